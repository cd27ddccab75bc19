// Prints the Node SDK's public surface as JSON: for every public method of
// MnemoClient, its parameter names and the property names of its options
// object, read with the TypeScript compiler from the SDK's sources.
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const nodeDir = join(root, "clients", "node");
const ts = createRequire(join(nodeDir, "package.json"))("typescript");

const program = ts.createProgram([join(nodeDir, "src", "index.ts")], {
  target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true, skipLibCheck: true,
});
const checker = program.getTypeChecker();
const index = program.getSourceFile(join(nodeDir, "src", "index.ts"));
const exported = checker.getExportsOfModule(checker.getSymbolAtLocation(index));
const clientSymbol = exported.find((s) => s.name === "MnemoClient");
const clientType = checker.getDeclaredTypeOfSymbol(
  clientSymbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(clientSymbol) : clientSymbol,
);

const surface = {};
for (const member of checker.getPropertiesOfType(clientType)) {
  const decl = member.valueDeclaration;
  if (!decl || !ts.isMethodDeclaration(decl)) continue;
  const modifiers = ts.getCombinedModifierFlags(decl);
  if (modifiers & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected) || /^[_#]/.test(member.name)) continue;
  // Of overloads, the one with the most parameters (search(query, options) over search(options)).
  const signature = checker.getSignaturesOfType(checker.getTypeOfSymbolAtLocation(member, decl), ts.SignatureKind.Call)
    .reduce((a, b) => (b.getParameters().length > a.getParameters().length ? b : a));
  const params = signature.getParameters().map((p) => p.name);
  const last = signature.getParameters().at(-1);
  let options = [];
  if (last) {
    const type = checker.getNonNullableType(checker.getTypeOfSymbolAtLocation(last, decl));
    if (type.isUnion?.()) {
      for (const t of type.types) if (t.getProperties().length) options = t.getProperties().map((p) => p.name);
    } else if (!(type.flags & ts.TypeFlags.StringLike)) {
      options = checker.getPropertiesOfType(type).map((p) => p.name);
    }
  }
  surface[member.name] = { params, options: options.sort() };
}
console.log(JSON.stringify(surface, null, 1));
