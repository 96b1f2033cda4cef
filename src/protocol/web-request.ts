/**
 * Turns a parsed request into a Web `Request`, the type Bun.serve hands to `fetch` and that
 * our `upgrade(req)` / `fetch(req)` hooks receive. It allocates (URL, Headers, Request), so
 * the server calls it only when a hook exists.
 *
 * The URL: origin-form targets ("/path?q") are appended to `http://` + Host (`https://` when
 * `secure`); an empty Host uses `hostFallback`. An absolute-form target is used as is and the
 * Host ignored (RFC 9112 §3.2.2). Asterisk-form ("OPTIONS *") becomes path "/*";
 * authority-form (CONNECT) becomes "scheme://authority/". The parser already refused Host
 * values that could reshape the URL ("/", "?", "#", "@", whitespace).
 * The body is attached for methods other than GET and HEAD (the Fetch API gives those none).
 */
import type { HttpRequest } from "./http-request-parser.ts";
import { HOST } from "./http-header-names.ts";

export interface WebRequestOptions {
  /** The peer's address; read it back with remoteAddressOf(request) (like server.requestIP). */
  remoteAddress?: string;
  /** The connection is TLS: the URL scheme is https (default false). */
  secure?: boolean;
  /** Authority to use when the Host header is empty, e.g. "127.0.0.1:8080". */
  hostFallback: string;
}

const remoteAddresses = new WeakMap<Request, string>();

/** Builds the Web Request; throws TypeError if the URL is invalid (answer 400 then). */
export function toWebRequest(request: HttpRequest, options: WebRequestOptions): Request {
  const url = requestUrl(request, options);
  const method = request.method;
  const hasBody = request.body !== null && method !== "GET" && method !== "HEAD";
  const webRequest = new Request(url, {
    method,
    // Fetch's HeadersInit takes any iterable of [name, value] pairs (a Map is one): one
    // native call builds the Headers. TypeScript's HeadersInit type only lists arrays.
    headers: new Headers(request.headers as unknown as [string, string][]),
    body: hasBody ? request.body : null,
  });
  if (options.remoteAddress !== undefined) remoteAddresses.set(webRequest, options.remoteAddress);
  return webRequest;
}

/** The remoteAddress given to toWebRequest for this Request, if any. */
export function remoteAddressOf(request: Request): string | undefined {
  return remoteAddresses.get(request);
}

/** The absolute URL of a parsed request (see the module comment for each target form). */
export function requestUrl(request: HttpRequest, options: WebRequestOptions): string {
  const target = request.target;
  const scheme = options.secure === true ? "https://" : "http://";
  const host = request.headers.get(HOST) || options.hostFallback;
  const first = target.charCodeAt(0);
  if (first === 0x2f) return scheme + host + target; // "/": origin-form
  if (target === "*") return scheme + host + "/*";
  if (request.method === "CONNECT") return scheme + target + "/";
  return target; // absolute-form
}
