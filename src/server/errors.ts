import { defineErrors } from "../errors.ts";

export const serverError = defineErrors({
  WASMLET_ERR_SERVER_ADDRESS_IN_USE: {
    description: "The kubelet API port is already taken by another process.",
    hint: "stop whatever listens there, or choose another --port",
  },
  WASMLET_ERR_SERVER_LISTEN: {
    description: "The kubelet API could not listen on its address (permission, unknown address).",
  },
  WASMLET_ERR_SERVER_ROUTE: {
    description:
      "A kubelet API route was registered wrongly (after start, twice, or without the WebSocket support it needs).",
  },
  WASMLET_ERR_SERVER_NOT_STARTED: {
    description: "The kubelet API's port was asked for before the server started (a wasmlet bug).",
  },
  WASMLET_ERR_HEALTH_CHECK: {
    description: "Two health checks were registered under one name (a wasmlet bug).",
  },
  WASMLET_ERR_PORT_FORWARD_DIAL: {
    description:
      "A port-forward could not connect to the pod's port within 5 s; kubectl shows it as `error forwarding port`.",
  },
  WASMLET_ERR_SPDY_TUNNEL: {
    description:
      "A WebSocket-tunnelled port-forward carried a text message where only binary SPDY frames belong; the connection ends.",
  },
  WASMLET_ERR_SPDY_STREAM: {
    description:
      "Data was written to a SPDY stream after it was reset or its session ended (the client went away), or to a stream of another session.",
  },
  WASMLET_ERR_UNAUTHENTICATED: {
    description:
      "A kubelet API request carried no valid client certificate or bearer token (HTTP 401).",
  },
  WASMLET_ERR_FORBIDDEN: {
    description:
      "A kubelet API request's user may not do what it asked (HTTP 403, from a SubjectAccessReview).",
  },
  WASMLET_ERR_NOT_FOUND: {
    description: "A kubelet API request named something that does not exist (HTTP 404).",
  },
  WASMLET_ERR_BAD_REQUEST: {
    description: "A kubelet API request's parameters are invalid (HTTP 400).",
  },
  WASMLET_ERR_CERTIFICATE: {
    description: "The serving certificate or key cannot be loaded, or they do not match.",
  },
});
