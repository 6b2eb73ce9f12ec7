// grpc-js passes an IP target as TLS ServerName, which Node flags with DEP0123 on every
// connection to an IP. It is harmless (certificate checks still use the IP SAN); hide only it.
export function hideKnownWarnings(): void {
  const original = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code === 'DEP0123') return;
    for (const l of original) l(w);
  });
}
