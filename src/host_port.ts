// How an address is written wherever Coulomb names one (logs, errors, permission flags): IPv6 in brackets.

/** "host:port", with brackets around an IPv6 host ("[::1]:50001"). */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
