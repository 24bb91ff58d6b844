// The service's HTTP API. Paths are relative, so the page also works behind a proxy under a prefix.

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === 'string' ? detail : `${status}: request refused`);
    this.status = status;
    this.detail = detail; // a sentence, or FastAPI's list of {loc, msg} for a body that does not fit
  }
}

export async function api(path, { method = 'GET', body } = {}, askedForKey = false) {
  const answer = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (answer.status === 401 && !askedForKey && askForApiKey()) return api(path, { method, body }, true);
  const data = await answer.json().catch(() => null);
  if (!answer.ok) throw new ApiError(answer.status, data?.detail ?? answer.statusText);
  return data;
}

// A server with MNIST_API_KEY set answers 401: ask once, and keep the key in a same-site cookie, which
// fetch and EventSource (which cannot send headers) both carry.
function askForApiKey() {
  const key = window.prompt('This service needs its API key:');
  if (!key) return false;
  document.cookie = `mnist_api_key=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
  return true;
}
