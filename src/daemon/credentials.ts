// bitcoind authenticates RPC with HTTP basic auth: either rpcuser/rpcpassword from the URL, or the random
// cookie it writes to `.cookie` at every start. The cookie changes whenever bitcoind restarts, so it is read
// lazily, re-read when the file's mtime moves, and re-read after a 401.
import { DAEMON_ERROR, DaemonError, TransientError } from "./errors.ts";

/** Where basic-auth credentials come from; `get` returns "user:password". */
export interface CredentialSource {
  get(): Promise<string>;
  /** Called after a 401 to the credentials `used`; true when fresh ones differ (worth an immediate retry). */
  refresh(used: string): Promise<boolean>;
}

/** Fixed credentials from a URL's userinfo (already percent-decoded). */
export class StaticCredentials implements CredentialSource {
  constructor(private readonly userPass: string) {}

  /** The fixed "user:password". */
  get(): Promise<string> {
    return Promise.resolve(this.userPass);
  }

  /** Static credentials never change. */
  refresh(): Promise<boolean> {
    return Promise.resolve(false);
  }
}

/** Credentials read from bitcoind's cookie file. */
export class CookieCredentials implements CredentialSource {
  private value: string | undefined;
  private mtimeMs: number | null | undefined;

  constructor(readonly path: string) {}

  /** The current cookie, re-read when the file changed; a missing file is transient (bitcoind not up yet). */
  async get(): Promise<string> {
    const mtime = await this.stat();
    if (this.value === undefined || mtime !== this.mtimeMs) await this.read(mtime);
    return this.value!;
  }

  /** Re-reads the file after a 401. */
  async refresh(used: string): Promise<boolean> {
    await this.read(await this.stat());
    return this.value !== used;
  }

  private async stat(): Promise<number | null> {
    try {
      return (await Deno.stat(this.path)).mtime?.getTime() ?? null;
    } catch (e) {
      throw this.unreadable(e);
    }
  }

  private async read(mtime: number | null): Promise<void> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.path);
    } catch (e) {
      throw this.unreadable(e);
    }
    // Core writes no newline, but a hand-made cookie may have one.
    const cookie = text.replace(/[\r\n]+$/, "");
    const colon = cookie.indexOf(":");
    if (colon <= 0 || colon === cookie.length - 1) {
      throw new DaemonError(
        DAEMON_ERROR.BAD_COOKIE,
        `cookie file ${this.path} does not hold user:password; point DAEMON_COOKIE at bitcoind's .cookie file`,
      );
    }
    this.value = cookie;
    this.mtimeMs = mtime;
  }

  private unreadable(e: unknown): TransientError {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file (is bitcoind running?)"
      : (e as Error).message;
    return new TransientError(`cannot read cookie file ${this.path}: ${why}`);
  }
}

/** The Authorization header value for "user:password" (UTF-8, as bitcoind compares bytes). */
export function basicAuthHeader(userPass: string): string {
  const bytes = new TextEncoder().encode(userPass);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}
