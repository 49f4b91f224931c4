// The REST API as the dashboard calls it: relative URLs (so the page works under a proxy's
// sub-path), the bearer token kept in this browser, and every refusal turned into an ApiError
// carrying the envelope's code, message and per-field errors, for the page to show.

const TOKEN_KEY = 'claudenest.token';

export class ApiError extends Error {
  constructor(status, code, message, errors) {
    super(message);
    this.status = status;
    this.code = code;
    this.errors = errors || {};
  }
}

export const auth = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    localStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
  },
};

/// `method path [body]` against `api/…`; resolves to the envelope's `data`, or with `full` to
/// the whole envelope (for `meta.pagination`).
export async function call(method, path, body, { full = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(`api/${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `The server did not answer (${err.message}).`);
  }
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // Not JSON: a proxy's page, say. Said below with the status.
  }
  if (!response.ok || !envelope || envelope.success === false) {
    const error = envelope && envelope.error;
    if (response.status === 401 && auth.token) {
      auth.clear();
      window.dispatchEvent(new Event('claudenest:signed-out'));
    }
    throw new ApiError(
      response.status,
      error ? error.code : `HTTP_${response.status}`,
      error ? error.message : `The server answered ${response.status} ${response.statusText}.`,
      error && error.errors,
    );
  }
  return full ? envelope : envelope.data;
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body = {}) => call('POST', path, body);
export const patch = (path, body) => call('PATCH', path, body);
export const put = (path, body) => call('PUT', path, body);
export const del = (path) => call('DELETE', path);

/// `a/b c` → `a%2Fb%20c`: one path segment whatever the value holds.
export const seg = (value) => encodeURIComponent(value);
