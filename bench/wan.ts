/**
 * An emulated WAN link: a TCP relay on 127.0.0.1 that delays every chunk, each way, by a fixed
 * time, keeping order (so 25 ms each way is a 50 ms round trip). Put in front of the jump host,
 * it slows every round trip of both hops: the cluster's connection runs inside the jump host's.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface Relay {
  port: number;
  close(): Promise<void>;
}

/** Sends what FROM receives to TO, ONE_WAY_MS later, the end included. */
function delayed(from: Socket, to: Socket, oneWayMs: number): void {
  from.on('data', (chunk) => setTimeout(() => to.write(chunk), oneWayMs));
  from.on('end', () => setTimeout(() => to.end(), oneWayMs));
  from.on('close', (hadError) => hadError && to.destroy());
}

export async function startDelayRelay(targetPort: number, oneWayMs: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const upstream = connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    delayed(client, upstream, oneWayMs);
    delayed(upstream, client, oneWayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
