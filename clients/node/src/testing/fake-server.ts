// A tiny in-process gRPC server for tests that are about the client's own
// behaviour (retries, headers, compression, TLS): connect-node's handler on a
// node:http2 server, implementing only what a test needs. Not part of the package.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

export interface FakeServer {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

export interface FakeTls {
  key: Buffer;
  cert: Buffer;
  /** Require and check client certificates against this CA (mutual TLS). */
  clientCa?: Buffer;
}

export async function startFakeServer(routes: (router: ConnectRouter) => void, tls?: FakeTls): Promise<FakeServer> {
  const handler = connectNodeAdapter({ routes });
  const server = tls
    ? http2.createSecureServer(
        {
          key: tls.key,
          cert: tls.cert,
          ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
        },
        handler,
      )
    : http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) {
          session.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

/** PEM files of a throwaway CA, a server certificate for 127.0.0.1 and
 * "mnemo.test", and a client certificate, made with the openssl command. */
export interface TestCerts {
  ca: Buffer;
  serverKey: Buffer;
  serverCert: Buffer;
  clientKey: Buffer;
  clientCert: Buffer;
  /** The directory holding ca.pem, client.pem, client-key.pem, ... */
  dir: string;
  cleanup(): void;
}

export function makeCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "mnemo-certs-"));
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=mnemo test CA",
    "-keyout", "ca-key.pem", "-out", "ca.pem");
  const issue = (name: string, subject: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", `${name}-key.pem`, "-out", `${name}.csr`);
    run("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
      "-days", "1", "-out", `${name}.pem`, "-extfile", `${name}.ext`);
  };
  issue("server", "/CN=mnemo.test", "subjectAltName=DNS:mnemo.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  issue("client", "/CN=mnemo client", "extendedKeyUsage=clientAuth\n");
  const read = (file: string) => readFileSync(join(dir, file));
  return {
    ca: read("ca.pem"),
    serverKey: read("server-key.pem"),
    serverCert: read("server.pem"),
    clientKey: read("client-key.pem"),
    clientCert: read("client.pem"),
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
