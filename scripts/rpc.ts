// `deno task rpc [--port P] COMMAND [ARGS]`: the admin CLI (the same as `main.ts rpc ...`); see src/admin/cli.ts.
import { runRpcCli } from "../src/admin/cli.ts";

const code = await runRpcCli(Deno.args, {
  env: { SERVICES: Deno.env.get("SERVICES") },
  stdout: (text) => console.log(text),
  stderr: (text) => console.error(text),
});
Deno.exit(code);
