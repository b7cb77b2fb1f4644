// The field app's service worker: keeps the app's own files so that it opens with no network.
// The APIs are never cached: what the app records waits in IndexedDB, not here.
const CACHE = 'skyledger-field-__VERSION__';
const SHELL = ['/field/', '/field/app.js', '/field/manifest.webmanifest', '/field/icon.svg'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('skyledger-field-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// The app's files from the cache at once, refreshed from the network behind (a new release
// shows on the next opening); anything else goes to the network untouched.
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    const cached = await cache.match(url.pathname);
    const fresh = fetch(event.request).then((answer) => {
      if (answer.ok) cache.put(url.pathname, answer.clone());
      return answer;
    });
    // A language switch (`?lang=`) asks the network first: the cached shell is in the old one.
    if (cached && url.search) return fresh.catch(() => cached);
    if (cached) {
      event.waitUntil(fresh.catch(() => {}));
      return cached;
    }
    return fresh;
  }));
});
