// Semantic check of Flux scripts with InfluxData's own Flux checker (flux-lsp's WebAssembly
// build): types, builtin signatures, imports. Reads a JSON list of scripts on stdin, prints a
// JSON list of booleans. Grafana's `v` and the dashboard's `${bucket}` are defined first.
const { Flux } = require(process.env.FLUX_LSP_NODE || '@influxdata/flux-lsp-node');
const prelude =
  'bucket = "octopus_energy"\n' +
  'v = {timeRangeStart: 2026-11-01T00:00:00Z, timeRangeStop: 2026-11-30T00:00:00Z, windowPeriod: 1m}\n';
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((query) => {
    const lines = query.split('\n');
    let i = 0; // imports must stay first
    while (i < lines.length && (lines[i].startsWith('import') || lines[i].trim() === '')) i++;
    const script = lines.slice(0, i).join('\n') + '\n' + prelude + lines.slice(i).join('\n');
    return new Flux(script).is_valid();
  });
  process.stdout.write(JSON.stringify(out));
});
