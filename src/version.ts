// One place for the name and version so that `--version`, server.version and the banner agree.

/** Coulomb's release version (semver). */
export const VERSION = "0.1.0";

/** The server software name reported to clients and peers. */
export const SERVER_NAME = "Coulomb";

/** "Coulomb 0.1.0": what server.version and `--version` report. */
export function serverVersionString(): string {
  return `${SERVER_NAME} ${VERSION}`;
}
