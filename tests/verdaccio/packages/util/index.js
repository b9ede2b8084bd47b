module.exports.pad = (text, width, fill = " ") => String(text).padStart(width, fill);
