import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  GRAPH_RESOURCE,
  SYSTEM_ASSIGNED_CLIENT_ID,
  mintAccessToken,
  objectIdFor,
  type MintTokenOptions,
} from './token';
import { listenOnLoopback } from '../loopback';

export * from './token';

/**
 * Local stand-in for the App Service / Azure Functions managed identity endpoint (the
 * `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` protocol, api-version 2019-08-01), plain HTTP on
 * 127.0.0.1 like the real one. It issues unsigned JWT-shaped tokens (see ./token) whose `roles`
 * claim carries the Graph application permissions configured with `setRoles`.
 *
 * Two facts about @azure/identity 4.13 / @azure/msal-node 5.x matter when testing with it:
 * - msal-node picks the managed identity source ONCE per module registry (a static), capturing
 *   IDENTITY_ENDPOINT at the first token request. Start one stand-in per Jest test file (jest gives
 *   each file its own registry) or per process, and keep it; a second stand-in on another port in
 *   the same registry is never called.
 * - Tokens are cached process-wide per identity and resource, and reused until 5 minutes before
 *   they expire. After `setRoles`, a credential keeps the old token. Either use another client id,
 *   or give tokens a lifetime under 300 s (`tokenLifetimeSeconds`) so that every `getToken`
 *   reaches the stand-in.
 */

export const API_VERSION = '2019-08-01';
export const TOKEN_PATH = '/msi/token';

export interface ManagedIdentityRequestRecord {
  /** The requested resource (e.g. https://graph.microsoft.com), as sent. */
  resource: string;
  /** `client_id` (user-assigned identity) when sent. */
  clientId?: string;
  /** `principal_id`/`object_id` or `mi_res_id` when sent. */
  principalId?: string;
  miResId?: string;
  at: Date;
  /** HTTP status the stand-in answered (0 when the socket was destroyed). */
  status: number;
}

export interface ManagedIdentityStandInOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Graph app roles embedded in tokens for every identity (default `[]`). */
  roles?: string[];
  /**
   * Client ids of the user-assigned identities "attached" to the app. When given, a request for any
   * other client id gets App Service's 400; when omitted, every client id is accepted.
   */
  userAssignedClientIds?: string[];
  /** Lifetime of issued tokens in seconds (default 86400, like managed identity tokens). */
  tokenLifetimeSeconds?: number;
  /** Secret expected in `x-identity-header`; default random. */
  header?: string;
}

export interface ManagedIdentityStandIn {
  /** http://127.0.0.1:PORT/msi/token — the value for IDENTITY_ENDPOINT. */
  readonly endpoint: string;
  /** Secret expected in the `x-identity-header` request header — the value for IDENTITY_HEADER. */
  readonly header: string;
  readonly port: number;
  /** Every token request received, oldest first. */
  readonly requests: ManagedIdentityRequestRecord[];
  /**
   * Sets the Graph app roles granted. Without clientId: the default for all identities; with one:
   * only for that user-assigned identity (overrides the default).
   */
  setRoles(roles: string[], clientId?: string): void;
  /** Current roles for an identity (system-assigned when clientId is omitted). */
  rolesFor(clientId?: string): string[];
  /** When down, answers 500 with a JSON error (note: @azure/identity retries 500 several times). */
  setDown(down: boolean): void;
  /** When unreachable, destroys every incoming socket without answering. */
  setUnreachable(unreachable: boolean): void;
  setTokenLifetimeSeconds(seconds: number): void;
  /**
   * Environment for the app: exactly `{ IDENTITY_ENDPOINT, IDENTITY_HEADER }`. A clientId passed here
   * is registered as an attached user-assigned identity (relevant with `userAssignedClientIds`);
   * the app still has to pass it to its credential itself (e.g. an AZURE_CLIENT_ID setting).
   */
  envFor(clientId?: string): { IDENTITY_ENDPOINT: string; IDENTITY_HEADER: string };
  /** A token exactly like the endpoint would issue now, without an HTTP round trip. */
  issueToken(options?: { resource?: string; clientId?: string }): string;
  stop(): Promise<void>;
}

export async function startManagedIdentityStandIn(
  options: ManagedIdentityStandInOptions = {},
): Promise<ManagedIdentityStandIn> {
  const header = options.header ?? randomBytes(16).toString('hex').toUpperCase();
  const requests: ManagedIdentityRequestRecord[] = [];
  let defaultRoles = [...(options.roles ?? [])];
  const rolesByClientId = new Map<string, string[]>();
  const attached = options.userAssignedClientIds
    ? new Set(options.userAssignedClientIds.map((id) => id.toLowerCase()))
    : undefined;
  let tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 86_400;
  let down = false;
  let unreachable = false;
  const sockets = new Set<Socket>();

  const rolesFor = (clientId?: string): string[] => [
    ...((clientId ? rolesByClientId.get(clientId.toLowerCase()) : undefined) ?? defaultRoles),
  ];

  const issue = (
    resource: string,
    clientId: string | undefined,
  ): { token: string; exp: number } => {
    const appid = clientId ?? SYSTEM_ASSIGNED_CLIENT_ID;
    const now = new Date();
    const mint: MintTokenOptions = {
      aud: resource.replace(/\/+$/, '') === GRAPH_RESOURCE ? GRAPH_RESOURCE : resource,
      roles: rolesFor(clientId),
      appid,
      oid: objectIdFor(appid),
      lifetimeSeconds: tokenLifetimeSeconds,
      now,
      extra: clientId ? { xms_mirid: `/userAssignedIdentities/${clientId}` } : {},
    };
    return {
      token: mintAccessToken(mint),
      exp: Math.floor(now.getTime() / 1000) + tokenLifetimeSeconds,
    };
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const q = url.searchParams;
    const record: ManagedIdentityRequestRecord = {
      resource: q.get('resource') ?? '',
      ...(q.get('client_id') ? { clientId: q.get('client_id') ?? '' } : {}),
      ...(q.get('principal_id') || q.get('object_id')
        ? { principalId: q.get('principal_id') ?? q.get('object_id') ?? '' }
        : {}),
      ...(q.get('mi_res_id') ? { miResId: q.get('mi_res_id') ?? '' } : {}),
      at: new Date(),
      status: 0,
    };
    requests.push(record);

    if (unreachable) {
      req.socket.destroy();
      return;
    }
    const reply = (status: number, body: unknown) => {
      record.status = status;
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        'x-ms-request-id': randomUUID(),
      });
      res.end(text);
    };
    // App Service's error body: {statusCode, message, correlationId} (msal-node reads `message`).
    const fail = (status: number, message: string) =>
      reply(status, { statusCode: status, message, correlationId: randomUUID() });

    if (url.pathname.replace(/\/+$/, '').toLowerCase() !== TOKEN_PATH) {
      return fail(404, `No route matches ${url.pathname}.`);
    }
    if (req.method !== 'GET')
      return fail(405, `The requested resource does not support http method '${req.method}'.`);
    const presented = req.headers['x-identity-header'];
    if (presented !== header) {
      return fail(
        401,
        presented === undefined
          ? 'Required header X-IDENTITY-HEADER is missing.'
          : 'The X-IDENTITY-HEADER value is not valid.',
      );
    }
    if (q.get('api-version') !== API_VERSION) {
      return fail(
        400,
        `The api-version '${q.get('api-version') ?? ''}' is not supported; use ${API_VERSION}.`,
      );
    }
    if (!record.resource) return fail(400, 'Required query parameter resource is missing.');
    if (down) return fail(500, 'An unexpected error occurred while fetching the AAD token.');
    const clientId = record.clientId;
    if (clientId && attached && !attached.has(clientId.toLowerCase())) {
      return fail(400, 'No Managed Identity found for specified ClientId/ResourceId/PrincipalId.');
    }
    const { token, exp } = issue(record.resource, clientId);
    reply(200, {
      access_token: token,
      expires_on: String(exp),
      resource: record.resource,
      token_type: 'Bearer',
      client_id: clientId ?? SYSTEM_ASSIGNED_CLIENT_ID,
    });
  };

  const server: Server = createServer(handle);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listenOnLoopback(server, options.port ?? 0);
  const endpoint = `http://127.0.0.1:${port}${TOKEN_PATH}`;

  return {
    endpoint,
    header,
    port,
    requests,
    setRoles(roles, clientId) {
      if (clientId) rolesByClientId.set(clientId.toLowerCase(), [...roles]);
      else defaultRoles = [...roles];
    },
    rolesFor,
    setDown(value) {
      down = value;
    },
    setUnreachable(value) {
      unreachable = value;
    },
    setTokenLifetimeSeconds(seconds) {
      tokenLifetimeSeconds = seconds;
    },
    envFor(clientId) {
      if (clientId && attached) attached.add(clientId.toLowerCase());
      return { IDENTITY_ENDPOINT: endpoint, IDENTITY_HEADER: header };
    },
    issueToken(opts = {}) {
      return issue(opts.resource ?? GRAPH_RESOURCE, opts.clientId).token;
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
