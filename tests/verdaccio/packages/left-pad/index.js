module.exports = require("@kiln-test/util").pad;
