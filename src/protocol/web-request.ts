/**
 * Turns a parsed request into a Web `Request`, the type Bun.serve hands to `fetch` and that
 * our `upgrade(req)` / `fetch(req)` hooks receive. It allocates (URL, Headers, Request), so
 * the server calls it only when a hook exists.
 *
 * The URL: origin-form targets ("/path?q") are appended to `http://` + Host (`https://` when
 * `secure`); an empty Host, or none (HTTP/1.0), uses `hostFallback`. An absolute-form target
 * is used as is and the Host ignored (RFC 9112 §3.2.2). Asterisk-form ("OPTIONS *") becomes
 * path "/*"; authority-form (CONNECT) becomes "scheme://authority/". The parser already
 * refused Host values that are not an RFC 3986 authority (and so any that could reshape the
 * URL: "/", "?", "#", "@", whitespace). The URL standard is stricter than RFC 3986 in places
 * ("256.1.1.1", "a%20b", port 99999, and absolute-form targets the parser does not look
 * into): such a request is refused with 400 here, as the client's error, never thrown.
 * The body is attached for methods other than GET and HEAD (the Fetch API gives those none).
 *
 * The method: user code sees exactly the method on the wire, or the request is refused. A
 * Web Request cannot carry every token: Bun's keeps the methods it knows (GET, PATCH,
 * PROPFIND, M-SEARCH...), upper-cases the lower-case spelling of some (`get` becomes GET, as
 * the Fetch API does for its six standard methods, and `patch` PATCH) and turns the others
 * into GET (`BREW`, `Patch`, `TRACK`). Methods are case-sensitive (RFC 9110 §9.1), so each
 * of those is a method this server does not implement: 501. The check compares the built
 * Request's method with the one sent, so it follows whatever the runtime's Request does.
 */
import { badRequest, HttpErrorCode, httpError, type HttpError } from "./http-errors.ts";
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

const ERR_METHOD_NOT_CARRIED = httpError(501, HttpErrorCode.METHOD_NOT_IMPLEMENTED,
  "method not implemented");
const ERR_URL = badRequest(HttpErrorCode.BAD_URL, "Host and request-target form no valid URL");

/**
 * Builds the Web Request, or returns why none can stand for this request (answer it with
 * that status): 400 when the URL parser refuses the URL, 501 when the Request would not
 * carry the method exactly (see the module comment).
 */
export function toWebRequest(
  request: HttpRequest,
  options: WebRequestOptions,
): Request | HttpError {
  const url = requestUrl(request, options);
  const method = request.method;
  const hasBody = request.body !== null && method !== "GET" && method !== "HEAD";
  // Fetch's HeadersInit takes any iterable of [name, value] pairs (a Map is one): one
  // native call builds the Headers. TypeScript's HeadersInit type only lists arrays.
  // Outside the try: the parser's values always fit, so a throw here is a bug to report.
  const headers = new Headers(request.headers as unknown as [string, string][]);
  let webRequest: Request;
  try {
    webRequest = new Request(url, { method, headers, body: hasBody ? request.body : null });
  } catch {
    // Only the URL and the method can be refused (the body is never given to GET or HEAD).
    return URL.canParse(url) ? ERR_METHOD_NOT_CARRIED : ERR_URL;
  }
  if (webRequest.method !== method) return ERR_METHOD_NOT_CARRIED;
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
