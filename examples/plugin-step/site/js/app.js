document.title += " (manifest-ready)";
