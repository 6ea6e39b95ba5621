// The crew page's service worker: once the page has been open, the page, its modules and
// vendor files, the day's route JSON, the basemap and the residents' photos stay usable with
// no connection. Network first for what changes (the page, the route, the basemap), cache
// first for what never does (versioned vendor files, media). Writes are never touched: the
// page queues them itself (IndexedDB) and sends them when the connection returns.

const CACHE = "geo311-crew-v1";
const LAST_BASEMAP = "/api/v1/basemap?last";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

async function networkFirst(request, fallbackKey) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) {
      await cache.put(request, response.clone());
      if (fallbackKey) await cache.put(fallbackKey, response.clone());
    }
    return response;
  } catch (error) {
    const found = (await cache.match(request)) || (fallbackKey && (await cache.match(fallbackKey)));
    if (found) return found;
    throw error;
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const found = await cache.match(request);
  if (found) return found;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const path = url.pathname;
  if (path.startsWith("/assets/vendor/") || path.startsWith("/media/")) {
    event.respondWith(cacheFirst(request));
  } else if (path === "/api/v1/basemap") {
    event.respondWith(networkFirst(request, LAST_BASEMAP));
  } else if (path === "/crew" || path.startsWith("/api/v1/crew/") || path.startsWith("/assets/maps/")) {
    // A conditional request (If-None-Match) is the page's own poll: a 304 is not cached.
    event.respondWith(networkFirst(request, null));
  }
});
