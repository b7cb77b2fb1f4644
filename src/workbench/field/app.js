// The Skyledger field app: site checks recorded on the phone, kept in IndexedDB with ids made
// on the device, and sent through intake's batch API when the network returns (photos first to
// the evidence store, then the checks that cite them). A resend is harmless: intake answers a
// check id it already has with what it stored.

const DB_NAME = 'skyledger-field';
const BATCH = 100; // checks per batch request (intake takes up to 1,000)
const LOW_ACCURACY_M = 100; // a device position less sure than this is flagged
const PHOTO_MAX_PX = 1600; // longest side of a photo after resizing on the device
const RETRY_MS = 30000;

const english = document.documentElement.lang.startsWith('en');
const t = (zh, en) => (english ? en : zh);
const $ = (selector) => document.querySelector(selector);

// ---- IndexedDB: `state` (session, rounds, reports), `checks` (the queue), `photos` (blobs) ----

const dbReady = new Promise((resolve, reject) => {
  const open = indexedDB.open(DB_NAME, 1);
  open.onupgradeneeded = () => {
    const db = open.result;
    db.createObjectStore('state');
    db.createObjectStore('checks', { keyPath: 'id' });
    db.createObjectStore('photos', { keyPath: 'sha256' });
  };
  open.onsuccess = () => resolve(open.result);
  open.onerror = () => reject(open.error);
});

const request = (r) => new Promise((resolve, reject) => {
  r.onsuccess = () => resolve(r.result);
  r.onerror = () => reject(r.error);
});
const objects = async (name, mode = 'readonly') => (await dbReady).transaction(name, mode).objectStore(name);
const getState = async (key) => request((await objects('state')).get(key));
const setState = async (key, value) => request((await objects('state', 'readwrite')).put(value, key));
const getPhoto = async (sha256) => request((await objects('photos')).get(sha256));
const putPhoto = async (photo) => request((await objects('photos', 'readwrite')).put(photo));
const putCheck = async (check) => request((await objects('checks', 'readwrite')).put(check));
const allChecks = async () => (await request((await objects('checks')).getAll())).sort((a, b) => a.seq - b.seq);

/// A check and its photos in one transaction: a photo already kept (maybe already uploaded)
/// stays as it is.
async function saveCheck(check, photos) {
  const db = await dbReady;
  return new Promise((resolve, reject) => {
    const tx = db.transaction(['checks', 'photos'], 'readwrite');
    for (const photo of photos) {
      const add = tx.objectStore('photos').add(photo);
      add.onerror = (event) => { event.preventDefault(); event.stopPropagation(); };
    }
    tx.objectStore('checks').put(check);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

// ---- Reference checks done on the device ----

const CREDIT_CHARS = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const CREDIT_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// GB 32100-2015: 18 characters, the last one a check character over the first 17.
export function validCreditCode(code) {
  if (code.length !== 18) return false;
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    const value = CREDIT_CHARS.indexOf(code[i]);
    if (value < 0) return false;
    sum += value * CREDIT_WEIGHTS[i];
  }
  return CREDIT_CHARS.indexOf(code[17]) === (31 - (sum % 31)) % 31;
}

/// A county belongs to the city sharing its first four digits; in Beijing and Tianjin every
/// 1101xx / 1201xx county belongs to the municipality.
function countyOf(city, county) {
  const municipality = city === '110000' || city === '120000';
  return county.startsWith(municipality ? city.slice(0, 2) + '01' : city.slice(0, 4));
}

const CITY_NAMES = {
  110000: ['北京', 'Beijing'], 120000: ['天津', 'Tianjin'], 130100: ['石家庄', 'Shijiazhuang'],
  130200: ['唐山', 'Tangshan'], 130400: ['邯郸', 'Handan'], 130500: ['邢台', 'Xingtai'],
  130600: ['保定', 'Baoding'], 130900: ['沧州', 'Cangzhou'], 131000: ['廊坊', 'Langfang'],
  131100: ['衡水', 'Hengshui'], 140100: ['太原', 'Taiyuan'], 140300: ['阳泉', 'Yangquan'],
  140400: ['长治', 'Changzhi'], 140500: ['晋城', 'Jincheng'], 140700: ['晋中', 'Jinzhong'],
  140800: ['运城', 'Yuncheng'], 141000: ['临汾', 'Linfen'], 141100: ['吕梁', 'Lüliang'],
  370100: ['济南', 'Jinan'], 370300: ['淄博', 'Zibo'], 370800: ['济宁', 'Jining'],
  371400: ['德州', 'Dezhou'], 371500: ['聊城', 'Liaocheng'], 371600: ['滨州', 'Binzhou'],
  371700: ['菏泽', 'Heze'], 410100: ['郑州', 'Zhengzhou'], 410200: ['开封', 'Kaifeng'],
  410300: ['洛阳', 'Luoyang'], 410500: ['安阳', 'Anyang'], 410600: ['鹤壁', 'Hebi'],
  410700: ['新乡', 'Xinxiang'], 410800: ['焦作', 'Jiaozuo'], 410900: ['濮阳', 'Puyang'],
  411200: ['三门峡', 'Sanmenxia'], 610100: ['西安', "Xi'an"], 610200: ['铜川', 'Tongchuan'],
  610300: ['宝鸡', 'Baoji'], 610400: ['咸阳', 'Xianyang'], 610500: ['渭南', 'Weinan'],
};
const cityName = (code) => (CITY_NAMES[code] ? `${t(...CITY_NAMES[code])} ${code}` : code);
const categoryName = (code) =>
  $(`#problem-template`).content.querySelector(`option[value="${CSS.escape(code)}"]`)?.textContent ?? code;

// ---- Session and campaign set-up, kept on the device ----

let session = null; // { name, team, csrf, … }
let signedOut = null; // why this device may not send, when it may not
let rounds = [];

async function signedOutNow(detail) {
  signedOut = detail || t('登录已失效。', 'The sign-in has ended.');
  await setState('signed_out', signedOut);
}

/// Asks who this device is signed in as, and the team's rounds; keeps both for offline use.
/// Answers `ok`, `offline`, `signed_out` or `unavailable`.
async function refreshSession() {
  let answer;
  try {
    answer = await fetch('/field/session', { cache: 'no-store' });
  } catch {
    return 'offline';
  }
  if (answer.status === 401) {
    const problem = await answer.json().catch(() => ({}));
    await signedOutNow(problem.detail);
    return 'signed_out';
  }
  if (!answer.ok) return 'unavailable';
  session = await answer.json();
  signedOut = null;
  await setState('session', session);
  await setState('signed_out', null);
  try {
    const r = await fetch(`/api/intake/v1/teams/${encodeURIComponent(session.team ?? '')}/rounds`, { cache: 'no-store' });
    if (r.ok) {
      rounds = (await r.json()).items;
      await setState('rounds', rounds);
    }
  } catch {
    return 'offline';
  }
  return 'ok';
}

/// The round of today, else the newest the team is in.
function currentRound() {
  const today = new Date().toISOString().slice(0, 10);
  return rounds.find((r) => r.starts_on <= today && today <= r.ends_on) ?? rounds[0];
}

// ---- Sending the queue ----

let syncing = null;

/// Sends what waits, once at a time (across tabs too, with the Web Locks API).
export function sync() {
  if (!syncing) {
    const run = () => sendQueue().catch((e) => { lastError = String(e); return 'failed'; });
    syncing = (navigator.locks ? navigator.locks.request('skyledger-field-sync', run) : run()).finally(() => {
      syncing = null;
      render();
    });
  }
  return syncing;
}

let lastError = '';

function photosOf(check) {
  return Object.values(check.photos ?? {}).flat();
}

async function failed(answer) {
  const problem = await answer.json().catch(() => ({}));
  lastError = `${answer.status} ${problem.detail ?? answer.statusText}`;
  return 'failed';
}

/// POSTs `body` for the queue: the answer when it was taken, else why not — 'offline', 'signed_out'
/// (the device was revoked or its session ended) or 'failed' (the reason kept in `lastError`).
async function post(url, contentType, body) {
  let answer;
  try {
    answer = await fetch(url, { method: 'POST', headers: { 'content-type': contentType, 'x-csrf-token': session.csrf }, body });
  } catch {
    return 'offline';
  }
  if (answer.status === 401) {
    await signedOutNow((await answer.json().catch(() => ({}))).detail);
    return 'signed_out';
  }
  if (!answer.ok) return failed(answer);
  return answer;
}

/// One photo to the evidence store; its address is its SHA-256, so sending it twice stores it once.
async function upload(photo) {
  const answer = await post('/api/intake/v1/evidence?visibility=internal', photo.type, photo.blob);
  if (typeof answer === 'string') return answer;
  const stored = await answer.json();
  if (stored.sha256 !== photo.sha256) {
    lastError = t('照片在传输中被改变，将重新发送。', 'A photo changed on the way; it will be sent again.');
    return 'failed';
  }
  await putPhoto({ ...photo, url: stored.url });
  return 'ok';
}

/// The inspection as intake takes it: each problem citing its photos by URL and SHA-256.
async function withEvidence(check) {
  const body = structuredClone(check.body);
  for (const problem of body.problems) {
    const evidence = [];
    for (const sha256 of check.photos?.[problem.id] ?? []) {
      const photo = await getPhoto(sha256);
      evidence.push({ url: photo.url, sha256, internal: true });
    }
    problem.evidence = evidence;
  }
  return body;
}

async function sendQueue() {
  if (!navigator.onLine) return 'offline';
  const state = await refreshSession();
  if (state !== 'ok') return state;
  lastError = '';
  const waiting = (await allChecks()).filter((c) => c.state === 'queued');
  for (const check of waiting) {
    for (const sha256 of photosOf(check)) {
      const photo = await getPhoto(sha256);
      if (photo && !photo.url) {
        const sent = await upload(photo);
        if (sent !== 'ok') return sent;
      }
    }
  }
  for (let i = 0; i < waiting.length; i += BATCH) {
    const chunk = waiting.slice(i, i + BATCH);
    const items = [];
    for (const check of chunk) items.push(await withEvidence(check));
    const answer = await post('/api/intake/v1/inspections/batch', 'application/json', JSON.stringify({ items }));
    if (typeof answer === 'string') return answer;
    const { results } = await answer.json();
    const sentAt = new Date().toISOString();
    for (const [k, result] of results.entries()) {
      await putCheck({ ...chunk[k], state: result.status, result, errors: result.errors ?? [], sent_at: sentAt });
    }
    await render();
  }
  return 'done';
}

/// Every check sent again, as after an answer lost on the way: intake answers what it has.
export async function requeueAll() {
  for (const check of await allChecks()) {
    if (check.state !== 'refused') await putCheck({ ...check, state: 'queued' });
  }
  await render();
}

// ---- The form ----

const form = $('#check-form');
let position = { source: null, accuracy: null };
let problemCount = 0;

function resizeTo(width, height) {
  const scale = Math.min(1, PHOTO_MAX_PX / Math.max(width, height));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

/// A photo from the camera, resized on the device to a JPEG, with its SHA-256.
async function preparePhoto(file) {
  const bitmap = await createImageBitmap(file);
  const [width, height] = resizeTo(bitmap.width, bitmap.height);
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d').drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.85));
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  const sha256 = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return { sha256, blob, type: 'image/jpeg', url: null };
}

const photoText = (photos) =>
  photos.length ? t(`${photos.length} 张照片已压缩并计算哈希`, `${photos.length} photo(s) resized and hashed`) : '';

function addProblem(problem = {}) {
  const n = ++problemCount;
  const fieldset = $('#problem-template').content.firstElementChild.cloneNode(true);
  fieldset.dataset.id = problem.id ?? crypto.randomUUID();
  fieldset.photos = problem.photos ?? [];
  for (const label of fieldset.querySelectorAll('[data-for]')) label.htmlFor = `${label.dataset.for}-${n}`;
  for (const field of fieldset.querySelectorAll('[data-id]')) field.id = `${field.dataset.id}-${n}`;
  fieldset.querySelector('.category').value = problem.category ?? fieldset.querySelector('.category').value;
  fieldset.querySelector('.severity').value = problem.severity ?? 'general';
  fieldset.querySelector('.description').value = problem.description ?? '';
  fieldset.querySelector('.photo-info').textContent = photoText(fieldset.photos);
  fieldset.querySelector('.photos').addEventListener('change', async (event) => {
    const info = fieldset.querySelector('.photo-info');
    info.textContent = t('正在处理照片…', 'Preparing the photos…');
    for (const file of event.target.files) {
      try {
        fieldset.photos.push(await preparePhoto(file));
      } catch (e) {
        info.textContent = t(`无法读取照片：${e}`, `Cannot read the photo: ${e}`);
        return;
      }
    }
    event.target.value = '';
    info.textContent = photoText(fieldset.photos);
    fieldset.dataset.ready = String(fieldset.photos.length);
  });
  fieldset.querySelector('.remove-problem').addEventListener('click', () => {
    fieldset.remove();
    numberProblems();
  });
  $('#problems').append(fieldset);
  numberProblems();
  return fieldset;
}

function numberProblems() {
  [...document.querySelectorAll('#problems .problem')].forEach((fieldset, i) => {
    fieldset.querySelector('legend').textContent = t(`问题 ${i + 1}`, `Problem ${i + 1}`);
  });
}

function fillRounds(selected) {
  const round = $('#round');
  round.replaceChildren(...rounds.map((r) => new Option(`${r.id} (${r.starts_on} – ${r.ends_on})`, r.id)));
  round.value = selected ?? currentRound()?.id ?? '';
  fillCities();
}

function fillCities(selected) {
  const cities = rounds.find((r) => r.id === $('#round').value)?.cities ?? [];
  const city = $('#city');
  const keep = selected ?? city.value;
  city.replaceChildren(...cities.map((code) => new Option(cityName(code), code)));
  if (keep && !cities.includes(keep)) city.append(new Option(cityName(keep), keep));
  if (keep) city.value = keep;
}

function resetForm() {
  $('#check-id').value = '';
  for (const id of ['#county', '#site-name', '#credit-code', '#address', '#lat', '#lon']) $(id).value = '';
  position = { source: null, accuracy: null };
  $('#position-info').textContent = t('尚未定位。也可以手动输入坐标。', 'No position yet. You may also type the coordinates.');
  $('#problems').replaceChildren();
  addProblem();
  $('#cancel-edit').hidden = true;
  for (const e of document.querySelectorAll('#check-form .error')) e.textContent = '';
}

function showError(id, text) {
  $(id).textContent = text;
  return !text;
}

/// The check in the form, or the first field that is wrong (shown next to it).
function readForm() {
  const city = $('#city').value;
  const county = $('#county').value.trim();
  const credit = $('#credit-code').value.trim().toUpperCase();
  const lat = Number($('#lat').value.trim());
  const lon = Number($('#lon').value.trim());
  let ok = showError('#county-error', county && !(/^\d{6}$/.test(county) && countyOf(city, county))
    ? t(`${county} 不是 ${city} 的区县代码`, `${county} is not a county code of ${city}`) : '');
  ok = showError('#site-name-error', $('#site-name').value.trim() ? '' : t('请填写点位名称', 'The site needs a name')) && ok;
  ok = showError('#credit-code-error', credit && !validCreditCode(credit)
    ? t('统一社会信用代码无效（校验位不符）', 'Not a valid unified social credit code (its check character does not match)') : '') && ok;
  const placed = $('#lat').value.trim() && $('#lon').value.trim() && Math.abs(lat) <= 90 && Math.abs(lon) <= 180;
  ok = showError('#position-error', placed ? '' : t('请定位或输入有效的经纬度', 'Locate the phone or type a valid latitude and longitude')) && ok;
  const problems = [...document.querySelectorAll('#problems .problem')].map((fieldset) => ({
    fieldset,
    id: fieldset.dataset.id,
    category: fieldset.querySelector('.category').value,
    severity: fieldset.querySelector('.severity').value,
    description: fieldset.querySelector('.description').value.trim(),
  }));
  const undescribed = problems.findIndex((p) => !p.description);
  ok = showError('#form-error', undescribed >= 0
    ? t(`问题 ${undescribed + 1} 需要描述`, `Problem ${undescribed + 1} needs a description`)
    : (!$('#round').value || !city ? t('没有可用的轮次或城市：请联网后再打开应用', 'No round or city on this device: open the app once with the network') : '')) && ok;
  if (!ok) return null;
  const flag = position.source === 'manual' ? 'manual'
    : position.accuracy !== null && position.accuracy > LOW_ACCURACY_M ? 'low_accuracy' : null;
  const body = {
    id: $('#check-id').value || crypto.randomUUID(),
    round: $('#round').value,
    team: session?.team,
    city_code: city,
    county_code: county || null,
    checked_at: new Date().toISOString(),
    site: {
      name: $('#site-name').value.trim(),
      credit_code: credit || null,
      address: $('#address').value.trim() || null,
      lat, lon,
      coordinate_system: $('#crs').value,
      accuracy_m: position.accuracy,
      position_flag: flag,
    },
    problems: problems.map(({ id, category, severity, description }) => ({ id, category, severity, description })),
  };
  return { body, problems };
}

async function save(event) {
  event.preventDefault();
  if (!session) {
    showError('#form-error', t('本机尚未登录：请使用督查办发送的登录链接', 'This device is not signed in: use the sign-in link the campaign office sent'));
    return;
  }
  const read = readForm();
  if (!read) {
    form.querySelector('.error:not(:empty)')?.previousElementSibling?.querySelector('input,select,textarea')?.focus();
    return;
  }
  const { body, problems } = read;
  const previous = (await allChecks()).find((c) => c.id === body.id);
  if (previous) body.checked_at = previous.body.checked_at; // a corrected check keeps its time
  const photos = Object.fromEntries(problems.map((p) => [p.id, p.fieldset.photos.map((photo) => photo.sha256)]));
  const check = {
    id: body.id,
    seq: previous?.seq ?? Date.now() + performance.now() / 1e6,
    state: 'queued',
    body,
    photos,
    errors: [],
    result: null,
  };
  await saveCheck(check, problems.flatMap((p) => p.fieldset.photos));
  resetForm();
  $('#form-error').textContent = '';
  $('#queue-summary').textContent = t('已保存到本机，联网后自动发送。', 'Saved on this device; it is sent when the network returns.');
  await render();
  sync();
}

/// A refused check back in the form, to be corrected and sent again (same ids).
async function edit(id) {
  const check = (await allChecks()).find((c) => c.id === id);
  if (!check) return;
  const b = check.body;
  fillRounds(b.round);
  fillCities(b.city_code);
  $('#check-id').value = b.id;
  $('#county').value = b.county_code ?? '';
  $('#site-name').value = b.site.name;
  $('#credit-code').value = b.site.credit_code ?? '';
  $('#address').value = b.site.address ?? '';
  $('#lat').value = b.site.lat;
  $('#lon').value = b.site.lon;
  $('#crs').value = b.site.coordinate_system ?? 'wgs84';
  position = { source: b.site.position_flag === 'manual' ? 'manual' : 'device', accuracy: b.site.accuracy_m ?? null };
  $('#problems').replaceChildren();
  for (const p of b.problems) {
    const photos = [];
    for (const sha256 of check.photos?.[p.id] ?? []) photos.push(await getPhoto(sha256));
    addProblem({ ...p, photos: photos.filter(Boolean) });
  }
  $('#cancel-edit').hidden = false;
  $('#form-error').textContent = (check.errors ?? []).map((e) => `${e.field}: ${e.detail}`).join('; ');
  $('#new-check-heading').scrollIntoView();
  $('#site-name').focus();
}

function locate() {
  const info = $('#position-info');
  if (!navigator.geolocation) {
    info.textContent = t('此浏览器无法定位，请手动输入坐标。', 'This browser cannot locate; type the coordinates.');
    return;
  }
  info.textContent = t('正在定位…', 'Locating…');
  navigator.geolocation.getCurrentPosition(
    (p) => {
      $('#lat').value = p.coords.latitude.toFixed(6);
      $('#lon').value = p.coords.longitude.toFixed(6);
      $('#crs').value = 'wgs84'; // the browser reports WGS 84
      position = { source: 'device', accuracy: Math.round(p.coords.accuracy) };
      const low = position.accuracy > LOW_ACCURACY_M;
      info.textContent = t(`已定位，精度约 ${position.accuracy} 米${low ? '（精度低，已标记）' : ''}`,
        `Located to about ${position.accuracy} m${low ? ' (low accuracy: flagged)' : ''}`);
      info.dataset.located = 'true';
    },
    (e) => { info.textContent = t(`无法定位：${e.message}。请手动输入坐标。`, `Cannot locate: ${e.message}. Type the coordinates.`); },
    { enableHighAccuracy: true, timeout: 20000, maximumAge: 60000 },
  );
}

// ---- What the inspector sees ----

const STATE_TEXT = {
  queued: ['待发送', 'Waiting to be sent'],
  created: ['已记录', 'Recorded'],
  already_had: ['已记录（此前已收到，未新增）', 'Recorded (already received before: nothing new)'],
  refused: ['被拒绝', 'Refused'],
};

function outcomeText(problem) {
  const short = (id) => String(id).slice(0, 8);
  switch (problem.outcome) {
    case 'duplicate': return t(`与未销号的问题 ${short(problem.duplicate_of)} 重复`, `duplicate of open problem ${short(problem.duplicate_of)}`);
    case 'rebound': return t(`反弹：已销号问题 ${short(problem.rebound_of)} 再次出现`, `rebound of closed problem ${short(problem.rebound_of)}`);
    default: return t('新的台账问题', 'new ledger entry');
  }
}

function element(tag, attributes = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

async function render() {
  const checks = await allChecks();
  const waiting = checks.filter((c) => c.state === 'queued').length;
  const refused = checks.filter((c) => c.state === 'refused').length;
  $('#net').textContent = `${navigator.onLine ? t('在线', 'Online') : t('离线', 'Offline')} · ${t(`${waiting} 条待发送`, `${waiting} waiting`)}`;
  $('#net').dataset.waiting = String(waiting);
  $('#who').textContent = session
    ? `${session.name ?? ''} · ${t('检查组', 'team')} ${session.team ?? ''}`
    : t('本机尚未登录', 'This device is not signed in');
  const banner = $('#banner');
  banner.hidden = !signedOut && !lastError;
  banner.textContent = signedOut
    ? t(`本机的登录已结束或已被督查办撤销，队列中的检查不能再发送（${signedOut}）。请使用新的登录链接。`,
      `This device's sign-in has ended or was revoked by the campaign office; its queue cannot be sent (${signedOut}). Use a new sign-in link.`)
    : lastError ? t(`发送未完成：${lastError}，稍后重试。`, `Sending did not finish: ${lastError}; it is tried again.`) : '';
  banner.dataset.state = signedOut ? 'signed_out' : lastError ? 'failed' : '';
  $('#queue-summary').dataset.count = String(checks.length);
  $('#queue-summary').dataset.refused = String(refused);
  const items = checks.slice().reverse().slice(0, 300).map((c) => {
    const [zh, en] = STATE_TEXT[c.state] ?? [c.state, c.state];
    const li = element('li', { 'data-id': c.id, 'data-state': c.state },
      element('strong', {}, c.body.site.name), ` · ${cityName(c.body.city_code)} · ${c.body.checked_at.slice(0, 16).replace('T', ' ')} `,
      element('span', { class: `state state-${c.state}` }, t(zh, en)));
    if (c.state === 'refused') {
      li.append(element('ul', { class: 'reasons' }, ...c.errors.map((e) => element('li', {}, `${e.field}: ${e.detail}`))));
      const button = element('button', { type: 'button', class: 'secondary edit', 'data-id': c.id }, t('修改后重新发送', 'Correct and send again'));
      button.addEventListener('click', () => edit(c.id));
      li.append(button);
    } else if (c.result?.problems?.length) {
      li.append(element('ul', {}, ...c.result.problems.map((p, i) =>
        element('li', { 'data-outcome': p.outcome }, `${categoryName(c.body.problems[i]?.category ?? '')}: ${outcomeText(p)}`))));
    }
    return li;
  });
  $('#queue').replaceChildren(...items);
  if (!checks.length) $('#queue').append(element('li', {}, t('本机还没有检查记录。', 'No site checks on this device yet.')));
}

// ---- My reports: the team's checks this round, with their status in the ledger ----

const LEDGER_STATUS = {
  reported: ['已上报，待交办', 'reported, not yet handed over'],
  assigned: ['已交办', 'handed over'],
  acknowledged: ['已签收', 'acknowledged'],
  rectification_reported: ['已报整改', 'rectification reported'],
  closed: ['已销号', 'closed'],
  reopened: ['重新整改', 'reopened'],
};

async function statusOf(problem) {
  if (problem.outcome === 'duplicate') return null;
  try {
    const answer = await fetch(`/api/publication/v1/problems/${problem.id}`, { cache: 'no-store' });
    if (answer.status === 404) return 'reported';
    return answer.ok ? (await answer.json()).status : null;
  } catch {
    return null;
  }
}

export async function refreshReports() {
  const summary = $('#reports-summary');
  const round = $('#round').value || currentRound()?.id;
  if (!session || !round) return;
  try {
    const answer = await fetch(`/api/intake/v1/teams/${encodeURIComponent(session.team)}/inspections?round=${encodeURIComponent(round)}`, { cache: 'no-store' });
    if (answer.status === 401) await signedOutNow((await answer.json().catch(() => ({}))).detail);
    if (!answer.ok) throw new Error(String(answer.status));
    const { items } = await answer.json();
    const problems = items.flatMap((i) => i.problems ?? []);
    // A few at a time: the public record answers each problem's status.
    for (let i = 0; i < problems.length; i += 6) {
      await Promise.all(problems.slice(i, i + 6).map(async (p) => { p.status = await statusOf(p); }));
    }
    await setState('reports', { round, at: new Date().toISOString(), items });
  } catch {
    summary.textContent = t('离线：显示上次获取的报告。', 'Offline: the reports as last fetched.');
  }
  await renderReports();
}

async function renderReports() {
  const reports = await getState('reports');
  if (!reports) return;
  const summary = $('#reports-summary');
  const problems = reports.items.flatMap((i) => i.problems ?? []);
  summary.textContent = t(`${reports.round}：${reports.items.length} 次检查，${problems.length} 个问题（${reports.at.slice(0, 16).replace('T', ' ')} UTC 获取）`,
    `${reports.round}: ${reports.items.length} checks, ${problems.length} problems (as of ${reports.at.slice(0, 16).replace('T', ' ')} UTC)`);
  summary.dataset.checks = String(reports.items.length);
  $('#reports').replaceChildren(...reports.items.map((i) => element('li', { 'data-id': i.id },
    element('strong', {}, i.site?.name ?? ''), ` · ${cityName(i.city_code)} · ${String(i.checked_at).slice(0, 10)}`,
    element('ul', {}, ...(i.problems ?? []).map((p) => {
      const [zh, en] = LEDGER_STATUS[p.status] ?? ['', ''];
      const status = p.outcome === 'duplicate' ? outcomeText(p) : `${outcomeText(p)} · ${t(zh, en)}`;
      return element('li', { 'data-problem': p.id, 'data-status': p.status ?? '' }, `${p.id.slice(0, 8)} ${status}`);
    })))));
}

// ---- Start ----

async function start() {
  if ('serviceWorker' in navigator) {
    // Without it the app still works while open; it only cannot open offline. Said on the page.
    navigator.serviceWorker.register('/field/sw.js', { scope: '/field/' }).catch((e) => {
      document.body.dataset.serviceWorker = String(e);
    });
  }
  session = (await getState('session')) ?? null;
  signedOut = (await getState('signed_out')) ?? null;
  rounds = (await getState('rounds')) ?? [];
  fillRounds();
  resetForm();
  await render();
  await renderReports();
  form.addEventListener('submit', save);
  $('#round').addEventListener('change', () => fillCities());
  $('#add-problem').addEventListener('click', () => addProblem().querySelector('select').focus());
  $('#cancel-edit').addEventListener('click', resetForm);
  $('#locate').addEventListener('click', locate);
  for (const id of ['#lat', '#lon']) {
    $(id).addEventListener('input', () => { position = { source: 'manual', accuracy: null }; });
  }
  $('#credit-code').addEventListener('change', () => readCreditCode());
  $('#sync').addEventListener('click', () => sync());
  $('#refresh-reports').addEventListener('click', () => refreshReports());
  window.addEventListener('online', () => { render(); sync(); });
  window.addEventListener('offline', () => render());
  setInterval(() => { if (navigator.onLine) sync(); }, RETRY_MS);
  if (navigator.onLine) {
    await sync();
    fillRounds($('#round').value || undefined);
  }
  document.body.dataset.ready = 'true';
}

function readCreditCode() {
  const input = $('#credit-code');
  input.value = input.value.trim().toUpperCase();
  showError('#credit-code-error', input.value && !validCreditCode(input.value)
    ? t('统一社会信用代码无效（校验位不符）', 'Not a valid unified social credit code (its check character does not match)') : '');
}

window.skyledgerField = { sync, requeueAll, refreshReports };
start();
