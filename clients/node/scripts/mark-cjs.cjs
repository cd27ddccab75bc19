// Marks dist/cjs as CommonJS: the package is "type": "module", so without this
// nested package.json Node would load the require() build's .js files as ESM.
require("node:fs").writeFileSync(require("node:path").join(__dirname, "..", "dist", "cjs", "package.json"), '{ "type": "commonjs" }\n');
