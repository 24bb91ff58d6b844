// The service's HTTP API. Paths are relative, so the page also works behind a proxy under a prefix.

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === 'string' ? detail : `${status}: request refused`);
    this.status = status;
    this.detail = detail; // a sentence, or FastAPI's list of {loc, msg} for a body that does not fit
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  const answer = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await answer.json().catch(() => null);
  if (!answer.ok) throw new ApiError(answer.status, data?.detail ?? answer.statusText);
  return data;
}
