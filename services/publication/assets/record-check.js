// Checks this problem's public record in the reader's browser, with WebCrypto and nothing else:
// the log's latest checkpoint (a C2SP signed note, Ed25519, under the key printed on the page),
// each of the problem's entries (SHA-256 of the text served) and its inclusion proof up to the
// checkpoint's root (RFC 9162), and the witnesses' cosignatures (C2SP tlog-cosignature). Nothing
// the server says about hashes or roots is trusted: they are all computed here.
(function () {
  "use strict";
  const section = document.getElementById("record-check");
  if (!section) return;
  const result = section.querySelector("[data-part=result]");
  const en = section.dataset.lang === "en";
  const say = (zh, english) => (en ? english : zh);
  const show = (state, text) => {
    section.dataset.result = state;
    result.textContent = text;
  };

  const utf8 = new TextEncoder();
  const fromBase64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const fromHex = (s) => Uint8Array.from((s.match(/../g) || []).map((h) => parseInt(h, 16)));
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const sha256 = async (...parts) => new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
  const json = async (url) => {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.json();
  };

  // A C2SP verifier key, `name+keyid+base64(type || public key)`, of the given signature type.
  async function verifierKey(text, type) {
    // The key's base64 may itself hold a "+": only the first two separate.
    const first = text.indexOf("+");
    const second = text.indexOf("+", first + 1);
    const [name, id, key] = [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
    const bytes = fromBase64(key);
    if (bytes.length !== 33 || bytes[0] !== type) throw new Error("not an Ed25519 verifier key: " + text);
    const subtle = await crypto.subtle.importKey("raw", bytes.slice(1), { name: "Ed25519" }, false, ["verify"]);
    return { name, id: fromHex(id), key: subtle };
  }

  // The note's signature lines by `key`'s name and id: the signature bytes after the id.
  function signaturesBy(lines, key) {
    return lines
      .map((line) => line.match(/^\u2014 (\S+) (\S+)$/))
      .filter((m) => m && m[1] === key.name)
      .map((m) => fromBase64(m[2]))
      .filter((sig) => equal(sig.slice(0, 4), key.id))
      .map((sig) => sig.slice(4));
  }

  // RFC 9162, 2.1.3.2: the root an inclusion proof leads to from `leaf`, or null.
  async function rootFrom(index, size, leaf, path) {
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    const node = new Uint8Array([1]);
    for (const p of path) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(node, p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await sha256(node, r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  async function check() {
    if (!window.crypto || !crypto.subtle) {
      show("unavailable", say("此浏览器或连接（非 HTTPS）无法在页面内核验；可用 skyledger verify-feed 核验。",
        "This browser or connection (not HTTPS) cannot check here; skyledger verify-feed can."));
      return;
    }
    const log = await verifierKey(section.dataset.verifierKey, 0x01);
    const note = await (await fetch("/checkpoint", { cache: "no-store" })).text();
    const blank = note.indexOf("\n\n");
    const body = note.slice(0, blank + 1);
    const lines = note.slice(blank + 2).split("\n");
    const [origin, sizeText, rootText] = body.split("\n");
    let signed = false;
    for (const sig of signaturesBy(lines, log)) {
      signed = signed || (await crypto.subtle.verify("Ed25519", log.key, sig, utf8.encode(body)));
    }
    if (origin !== log.name || !signed) {
      show("not-verified", say("未通过核验：检查点签名不符。", "not verified: the checkpoint's signature does not check."));
      return;
    }
    const size = Number(sizeText);
    const root = fromBase64(rootText);
    const wanted = (section.dataset.entries || "").split(",").filter((x) => x !== "").map(Number);
    const covered = wanted.filter((i) => i < size);
    for (const index of covered) {
      const entry = (await json(`/v1/chain/entries?start=${index}&limit=1`)).entries[0];
      let contentHash;
      if (entry && entry.index === index && entry.content != null) {
        if (JSON.parse(entry.content).problem_id !== section.dataset.problem) throw new Error("entry " + index);
        contentHash = await sha256(utf8.encode(entry.content));
      } else if (entry && entry.index === index) {
        contentHash = fromHex(entry.content_hash); // withdrawn: its hash keeps its place
      } else {
        throw new Error("entry " + index + " missing");
      }
      const leaf = await sha256(new Uint8Array([0]), contentHash);
      const proof = await json(`/v1/chain/proof/inclusion?index=${index}&tree_size=${size}`);
      const computed = await rootFrom(index, size, leaf, proof.audit_path.map(fromHex));
      if (!computed || !equal(computed, root)) {
        show("not-verified", say(`未通过核验：第 ${index} 条记录与检查点（共 ${size} 条）不符。`,
          `not verified: entry ${index} does not match the checkpoint of a log of ${size}.`));
        return;
      }
    }
    const witnessed = [];
    for (const text of (section.dataset.witnesses || "").split(" ").filter((w) => w)) {
      const witness = await verifierKey(text, 0x04);
      for (const sig of signaturesBy(lines, witness)) {
        const time = new DataView(sig.buffer, sig.byteOffset, 8).getBigUint64(0);
        const message = utf8.encode(`cosignature/v1\ntime ${time}\n` + body);
        if (await crypto.subtle.verify("Ed25519", witness.key, sig.slice(8), message)) {
          witnessed.push(witness.name);
          break;
        }
      }
    }
    if (!covered.length) {
      show("pending", say("此问题的记录尚待下一检查点。", "This problem's entries await the next checkpoint."));
      return;
    }
    const which = covered.join(", ");
    const pending = wanted.length - covered.length;
    let text = covered.length === 1
      ? say(`已核验：第 ${which} 条记录，日志共 ${size} 条`, `verified: entry ${which} of a log of ${size}`)
      : say(`已核验：第 ${which} 条记录，日志共 ${size} 条`, `verified: entries ${which} of a log of ${size}`);
    if (witnessed.length) text += say(`，见证方：${witnessed.join("、")}`, `, witnessed by ${witnessed.join(", ")}`);
    if (pending) text += say(`（另有 ${pending} 条尚待下一检查点）`, ` (${pending} newer, awaiting the next checkpoint)`);
    show("verified", text + say("。", "."));
  }

  check().catch((e) => show("not-verified", say("未通过核验：", "not verified: ") + e.message));
})();
