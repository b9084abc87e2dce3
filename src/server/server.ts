// The kubelet API: fastify over HTTPS. The port is bound at start, before any certificate exists
// (handshakes fail until one arrives), so a port in use is reported at once. Every request is
// authenticated (client certificate or bearer token) and authorized (SubjectAccessReview on the
// Node) before its handler runs; anonymous requests get 401, unauthorized ones 403. Client
// certificates are asked for only with a client CA, and verified against it alone.
//
// Endpoints plug in with `server.route({...})` before `start()`: a method, a URL, a handler and,
// when the path mapping is not enough, the authorization it needs (see authz.ts). A route may
// declare a Node feature it brings (`declares`), which `features()` reports for the Node status.
import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import type { Server as HttpsServer } from "node:https";
import fastifyWebsocket from "@fastify/websocket";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type HTTPMethods,
  LogController,
} from "fastify";
import type { Logger } from "pino";
import type { Config } from "../config/config.ts";
import type { Authenticator, UserInfo } from "./authn.ts";
import {
  type Authorizer,
  type NodeAccess,
  type NodeSubresource,
  subresourcesForPath,
  type Verb,
  verbForMethod,
} from "./authz.ts";
import type { ChannelSocket } from "./channel-protocol.ts";
import { serverError } from "./errors.ts";
import { httpFailure } from "./http-errors.ts";
import type { CurrentCertificate, ServingCertificates } from "./serving-certificates.ts";

export interface RouteContext {
  /** The authenticated caller. */
  user: UserInfo;
  /** The subresource that granted access. */
  subresource: NodeSubresource;
  log: Logger;
}

export interface KubeletRoute {
  method: HTTPMethods | HTTPMethods[];
  /** fastify path syntax, e.g. `/containerLogs/:namespace/:pod/:container`. */
  url: string;
  handler: (request: FastifyRequest, reply: FastifyReply, context: RouteContext) => unknown;
  /** Authorization; by default the kubelet's mapping of the path and the verb of the method. */
  access?: { verb?: Verb; subresources?: readonly NodeSubresource[] };
  /** A `status.declaredFeatures` entry the node gains with this route. */
  declares?: string;
  /**
   * Makes a GET route a WebSocket endpoint. A request asking to upgrade meets `handler` first,
   * before anything is upgraded: it refuses by throwing (an HTTP error) or returns, and then the
   * connection is upgraded and given to `websocket`.
   */
  websocket?: (socket: ChannelSocket, request: FastifyRequest, context: RouteContext) => void;
}

export interface KubeletServerOptions {
  config: Pick<Config, "address" | "port" | "nodeName">;
  logger: Logger;
  authenticator: Authenticator;
  authorizer: Authorizer;
  certificates: ServingCertificates;
  /**
   * PEM bundle that verifies client certificates. Without one no client certificate is asked
   * for, and none is verified against Node's default roots.
   */
  clientCA: string | undefined;
}

/** Whether a PEM bundle holds a certificate: an empty or blank bundle is no client CA. */
export function holdsCertificate(pem: string | undefined): pem is string {
  return pem !== undefined && /-----BEGIN (?:TRUSTED |X509 )?CERTIFICATE-----/.test(pem);
}

interface RouteConfig {
  access?: KubeletRoute["access"];
}

const USER = Symbol("wasmlet.user");
const GRANTED = Symbol("wasmlet.granted");

type AuthedRequest = FastifyRequest & { [USER]?: UserInfo; [GRANTED]?: NodeSubresource };

/**
 * Registers a route on `app`, which has @fastify/websocket registered, as the kubelet API does
 * (exported for tests that serve routes without TLS, authn and authz). The plugin upgrades before a
 * route's handler runs: a request asking to upgrade meets `handler` in preHandler instead, so it
 * can refuse with an HTTP error before anything is upgraded. Those it lets through are upgraded and
 * given to `websocket` (closed when the route has none). `context` gives each request's context.
 */
export function mountRoute<Log extends FastifyBaseLogger>(
  app: FastifyInstance<HttpServer | HttpsServer, IncomingMessage, ServerResponse, Log>,
  route: KubeletRoute,
  context: (request: FastifyRequest) => RouteContext,
): void {
  const { websocket } = route;
  app.route({
    method: route.method,
    url: route.url,
    config: { access: route.access } satisfies RouteConfig,
    handler: (request, reply) => route.handler(request, reply, context(request)),
    preHandler: async (request, reply) => {
      if (!request.ws) return;
      reply.header("connection", "close"); // an upgraded socket cannot serve another request
      await route.handler(request, reply, context(request));
    },
    ...(websocket
      ? {
          wsHandler: (socket: ChannelSocket, request: FastifyRequest) =>
            websocket(socket, request, context(request)),
        }
      : {}),
  });
}

export class KubeletServer {
  readonly #options: KubeletServerOptions;
  readonly #log: Logger;
  readonly #routes: KubeletRoute[] = [];
  #app: FastifyInstance<HttpsServer, IncomingMessage, ServerResponse, Logger> | undefined;
  #port: number | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: KubeletServerOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "kubelet-api" });
  }

  /** Registers an endpoint; only before start(). */
  route(route: KubeletRoute): void {
    if (this.#app)
      throw serverError(
        "WASMLET_ERR_SERVER_ROUTE",
        `route ${route.url} registered after the kubelet API started`,
      );
    const methods = [route.method].flat();
    for (const existing of this.#routes) {
      if (existing.url === route.url && [existing.method].flat().some((m) => methods.includes(m))) {
        throw serverError(
          "WASMLET_ERR_SERVER_ROUTE",
          `route ${methods.join(",")} ${route.url} is registered twice`,
        );
      }
    }
    this.#routes.push(route);
  }

  /** Node features the registered routes bring, for `status.declaredFeatures`. */
  features(): string[] {
    return [...new Set(this.#routes.flatMap((r) => (r.declares ? [r.declares] : [])))].sort();
  }

  /** The bound port (after start). */
  get port(): number {
    if (this.#port === undefined)
      throw serverError("WASMLET_ERR_SERVER_NOT_STARTED", "the kubelet API has not started");
    return this.#port;
  }

  async start(): Promise<void> {
    if (this.#app) return;
    const { config, certificates } = this.#options;
    const initial = certificates.current();
    const app = Fastify({
      loggerInstance: this.#log,
      // Requests are logged once, at debug level, by the onResponse hook below.
      logController: new LogController({ disableRequestLogging: true }),
      https: {
        // Without a client CA there is no certificate to ask for: bearer tokens only.
        requestCert: this.#clientCA !== undefined,
        rejectUnauthorized: false,
        minVersion: "TLSv1.2",
        ...this.#trust(),
        ...(initial ? { cert: initial.cert, key: initial.key } : {}),
      },
      // Paths carry names of pods and containers; keep them exactly as sent.
      routerOptions: { ignoreTrailingSlash: false },
    });
    this.#app = app;
    await app.register(fastifyWebsocket);
    certificates.onChange((certificate) => this.#useCertificate(certificate));

    app.addHook("onRequest", async (request: AuthedRequest) => {
      const path = request.url;
      const routeConfig = (request.routeOptions.config ?? {}) as RouteConfig;
      const access: NodeAccess = {
        verb: routeConfig.access?.verb ?? verbForMethod(request.method),
        subresources: routeConfig.access?.subresources ?? subresourcesForPath(path),
      };
      const user = await this.#options.authenticator.authenticate(request.raw);
      if (!user) throw serverError("WASMLET_ERR_UNAUTHENTICATED", "Unauthorized");
      const granted = await this.#options.authorizer.authorize(user, access);
      if (!granted) {
        throw serverError(
          "WASMLET_ERR_FORBIDDEN",
          `Forbidden (user=${user.username}, verb=${access.verb}, resource=nodes, subresource(s)=[${access.subresources.join(",")}])`,
        );
      }
      request[USER] = user;
      request[GRANTED] = granted;
    });
    app.addHook("onResponse", async (request: AuthedRequest, reply) => {
      request.log.debug(
        {
          method: request.method,
          url: request.url,
          status: reply.statusCode,
          user: request[USER]?.username,
          ms: Math.round(reply.elapsedTime),
        },
        "kubelet API request",
      );
    });
    app.setErrorHandler((error, request, reply) => {
      const failure = httpFailure(error);
      if (failure.internal)
        request.log.error({ err: error, url: request.url }, "kubelet API request failed");
      else
        request.log.debug(
          { status: failure.status, url: request.url, reason: failure.message },
          "kubelet API request refused",
        );
      if (failure.status === 401) reply.header("www-authenticate", 'Bearer realm="wasmlet"');
      // A refused upgrade's socket is closed after the answer: a client must not reuse it.
      if (request.headers.upgrade) reply.header("connection", "close");
      return reply.code(failure.status).type("text/plain; charset=utf-8").send(failure.message);
    });
    app.setNotFoundHandler((_request, reply) =>
      reply.code(404).type("text/plain; charset=utf-8").send("404 page not found\n"),
    );

    const context = (request: AuthedRequest): RouteContext => ({
      user: request[USER] as UserInfo,
      subresource: request[GRANTED] as NodeSubresource,
      log: request.log as unknown as Logger,
    });
    for (const route of this.#routes) mountRoute(app, route, context);

    try {
      await app.listen({ host: config.address, port: config.port });
    } catch (error) {
      this.#app = undefined;
      await app.close().catch(() => {});
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EADDRINUSE") {
        throw serverError(
          "WASMLET_ERR_SERVER_ADDRESS_IN_USE",
          `the kubelet API cannot listen on ${config.address}:${config.port}: the port is in use`,
          {
            cause: error,
          },
        );
      }
      throw serverError(
        "WASMLET_ERR_SERVER_LISTEN",
        `the kubelet API cannot listen on ${config.address}:${config.port}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    const address = app.server.address();
    this.#port = typeof address === "object" && address ? address.port : config.port;
    this.#log.info(
      {
        address: config.address,
        port: this.#port,
        serving: initial ? initial.source : "waiting for a certificate",
      },
      "kubelet API listening",
    );
  }

  #useCertificate(certificate: CurrentCertificate): void {
    const server = this.#app?.server as HttpsServer | undefined;
    if (!server) return;
    server.setSecureContext({ cert: certificate.cert, key: certificate.key, ...this.#trust() });
  }

  /** The client CA, when one is configured (a bundle without a certificate is none). */
  get #clientCA(): string | undefined {
    const ca = this.#options.clientCA;
    return holdsCertificate(ca) ? ca : undefined;
  }

  /**
   * What client certificates verify against: the client CA, or nothing. Never left out, for a
   * TLS context without `ca` trusts Node's default roots and NODE_EXTRA_CA_CERTS.
   */
  #trust(): { ca: string | string[] } {
    return { ca: this.#clientCA ?? [] };
  }

  /** Stops accepting connections and waits for requests in flight; safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const app = this.#app;
      if (!app) return;
      await app.close();
    })();
    return this.#closing;
  }

  /** Closes at once, cutting open connections (long-lived streams included). */
  async destroy(): Promise<void> {
    const server = this.#app?.server as HttpsServer | undefined;
    server?.closeAllConnections();
    await this.close();
  }
}
