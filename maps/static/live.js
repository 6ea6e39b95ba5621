// Live changes for staff pages: listens to /api/v1/live (Server-Sent Events) and calls the
// page's handlers. Events carry ids and states only; a handler reloads what its page shows
// through the JSON API. `open` is called on every (re)connection: reload then too, since
// changes made while the stream was down are not replayed.
//
//   import { listen } from "./live.js";
//   const stop = listen({ open() {...}, plan(data) {...}, work_order(data) {...} });
//
// Kinds: work_order {id, action, status, crew_id?}, incident {id, action, status},
// plan {id, action, day, version, crew_ids}.
const KINDS = ["work_order", "incident", "plan"];

export function listen(handlers, { url = "/api/v1/live" } = {}) {
  let source = null;
  let closed = false;
  let retryTimer = null;

  const connect = () => {
    if (closed) return;
    source = new EventSource(url, { withCredentials: true });
    source.addEventListener("open", () => handlers.open?.());
    for (const kind of KINDS) {
      source.addEventListener(kind, (event) => {
        let data;
        try { data = JSON.parse(event.data); } catch { return; }
        handlers[kind]?.(data);
      });
    }
    source.addEventListener("error", () => {
      handlers.error?.();
      // The browser retries by itself unless the server refused (401/403: signed out); then
      // try again later ourselves, so a page that signs in again picks the stream back up.
      if (source.readyState === EventSource.CLOSED && !closed) {
        retryTimer = setTimeout(connect, 5000);
      }
    });
  };

  connect();
  return () => {
    closed = true;
    clearTimeout(retryTimer);
    source?.close();
  };
}
