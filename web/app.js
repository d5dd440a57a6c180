// lore's web page: knowledge bases, uploads with progress, hit testing and answers.
// Plain JS, no build step, no dependencies. Text from the server (file names, chunks, answers)
// is only ever put into the page as text nodes, never parsed as HTML.
"use strict";

// ---------------------------------------------------------------------------------------------
// Language: Chinese unless the browser prefers English.

const STRINGS = {
  zh: {
    skip: "跳到主要内容", title: "知识库管理", apiKey: "API 密钥", close: "关闭",
    kbs: "知识库", noKbs: "还没有知识库，先创建一个。", newKb: "新建知识库",
    kbId: "标识（小写字母、数字、- 或 _）", kbName: "名称（可选）", create: "创建",
    pickKb: "请先选择或新建一个知识库。", deleteKb: "删除知识库", sections: "功能",
    tabDocs: "文档", tabSearch: "命中测试", tabAsk: "问答",
    dropHint: "把文件拖到这里，或", pickFiles: "选择文件", uploads: "上传",
    formats: "支持 PDF、Word (.docx)、Markdown、HTML 和纯文本。同名文件会替换原文档。",
    documents: "文档", refresh: "刷新", noDocs: "还没有文档。",
    colName: "文件名", colSize: "大小", colChunks: "片段数", colUpdated: "更新时间",
    colStatus: "状态", colActions: "操作",
    query: "查询", topK: "返回条数 (top_k)", threshold: "分数阈值", searchButton: "测试",
    question: "问题", stream: "流式输出", askButton: "提问", citations: "引用",
    keyHelp: "服务器配置了密钥时需要填写。密钥只保存在本浏览器中。", keyLabel: "密钥",
    save: "保存", clearKey: "清除", cancel: "取消",
    statusQueued: "排队中", statusProcessing: "处理中", statusReady: "就绪", statusFailed: "失败",
    uploading: "上传中 {percent}%", uploaded: "已上传", waiting: "等待上传", readyChunks: "就绪，共 {n} 个片段",
    processingProgress: "处理中 {done}/{total}", failedReason: "失败：{reason}",
    view: "查看片段", replace: "替换", remove: "删除",
    confirmDeleteKb: "确定删除知识库“{name}”及其全部文档吗？此操作无法撤销。",
    confirmDeleteDoc: "确定删除文档“{name}”吗？", deleted: "已删除“{name}”。",
    kbCreated: "已创建知识库“{name}”。", replacing: "用新文件替换“{name}”",
    chunkN: "片段 {n}", chunksOf: "{name} 的片段", noChunks: "这个文档还没有可检索的片段。",
    searching: "检索中…", resultsCount: "找到 {n} 条结果。", noResults: "没有达到阈值的结果。",
    score: "分数", asking: "正在生成回答…", latency: "{ms} 毫秒", model: "模型：{model}",
    extractive: "模型未能及时回答，以下为原文摘录",
    verdict_answer: "回答", verdict_not_found: "未找到", verdict_clarify: "需要澄清",
    narrowedTo: "已限定在“{label}”中回答", citeRef: "查看引用 {n}",
    errUnauthorized: "需要有效的 API 密钥。请点击右上角的“API 密钥”填写。",
    errForbidden: "当前密钥无权执行此操作。",
    errTooLarge: "文件太大，超过了服务器允许的上传大小。",
    errTooLargeLimit: "文件太大：每次上传不能超过 {limit}。",
    uploadLimit: "每次上传不超过 {limit}。",
    errUnsupported: "不支持的文件类型：{message}",
    errEmpty: "文件是空的：{message}",
    errNetwork: "无法连接服务器，请检查网络后重试。",
    errOther: "操作失败（{code}）：{message}",
    keySaved: "已保存密钥。", keyCleared: "已清除密钥。",
    tabWechat: "微信公众号", loading: "加载中…", wechatAccount: "公众号连接", wechatState: "状态",
    wechatConnected: "已连接", wechatNotConnected: "未连接", wechatUrl: "服务器地址 (URL)",
    copy: "复制", copyUrl: "复制服务器地址", copyToken: "复制 Token", copyKey: "复制 EncodingAESKey",
    copied: "已复制。", copyFailed: "无法自动复制，请选中后手动复制。",
    wechatPortNote: "微信只能访问公网上 80 端口（HTTP）或 443 端口（HTTPS）的地址：如果本页不是从那样的地址打开的，请把主机和端口换成对外的地址。",
    appId: "AppID", safeMode: "安全模式", customerService: "客服消息", welcome: "欢迎语",
    safeModeOn: "开启（消息加密）", safeModeOff: "关闭（明文）",
    customerServiceOn: "开启（超时的回答以客服消息补发）", customerServiceOff: "关闭",
    defaultWelcome: "（默认欢迎语）", disconnect: "断开连接",
    wechatConnect: "连接公众号", wechatUpdate: "修改配置",
    wechatReplaceNote: "每次保存都会替换整个配置。已保存的 Token 和密钥不会显示出来，所以每次保存都要重新填写；EncodingAESKey 或 AppSecret 留空，即关闭安全模式或客服消息。",
    tokenLabel: "Token（3–32 位字母或数字，与微信公众平台填写的一致）", generate: "生成",
    generateToken: "生成 Token", generateKey: "生成 EncodingAESKey",
    appIdLabel: "AppID（开发者 ID）", aesKeyLabel: "EncodingAESKey（可选，43 位；填写即为安全模式）",
    appSecretLabel: "AppSecret（可选）",
    appSecretHint: "只适用于有客服消息权限的公众号（一般为已认证的服务号）：5 秒内来不及的回答会以客服消息补发。没有这个权限就留空。",
    welcomeLabel: "关注后的欢迎语（可选，留空用默认欢迎语）", connect: "连接",
    wechatHelp: "接入步骤",
    wechatStep1: "让微信能从公网访问本服务：HTTPS 用 443 端口，HTTP 用 80 端口（微信只接受这两个端口）。",
    wechatStep2: "登录微信公众平台，打开“设置与开发 → 基本配置 → 服务器配置”：记下 AppID；Token 自拟或在本页生成；要用安全模式就生成一个 EncodingAESKey（在平台上或在本页生成都可以）。",
    wechatStep3: "在本页填写 Token、AppID 和 EncodingAESKey 并保存。",
    wechatStep4: "回到服务器配置：服务器地址 (URL) 填上面的地址，Token 和 EncodingAESKey 与本页相同，消息加解密方式选明文、兼容或安全模式，提交（微信会校验一次），然后点“启用”。",
    wechatStep5: "在“接口权限”中开启“接收语音识别结果”，语音消息才会带上识别出的文字。",
    wechatSaved: "已保存公众号配置。请在微信公众平台填写相同的服务器地址、Token 和 EncodingAESKey。",
    wechatDisconnected: "已断开公众号连接。",
    confirmDisconnect: "确定断开知识库“{name}”与公众号 {app_id} 的连接吗？断开后该公众号的消息将不再回答。",
    confirmTurnOff: "当前配置中的以下功能将被关闭：{what}。已保存的密钥不会显示，需要保留就请重新填写。继续保存吗？",
    turnOffSafeMode: "安全模式（未填写 EncodingAESKey）", turnOffCustomerService: "客服消息（未填写 AppSecret）",
    listSeparator: "、",
    errToken: "Token 须为 3–32 位字母或数字，与微信公众平台服务器配置中填写的一致。",
    errAppId: "请填写 AppID（微信公众平台“基本配置”中的开发者 ID）。",
    errAesKey: "EncodingAESKey 须为 43 位字母或数字（可以点“生成”）。",
    errInvalid: "配置无效：{message}",
  },
  en: {
    skip: "Skip to main content", title: "Knowledge bases", apiKey: "API key", close: "Close",
    kbs: "Knowledge bases", noKbs: "No knowledge base yet: create one.", newKb: "New knowledge base",
    kbId: "ID (lowercase letters, digits, - or _)", kbName: "Name (optional)", create: "Create",
    pickKb: "Pick or create a knowledge base.", deleteKb: "Delete knowledge base",
    sections: "Sections", tabDocs: "Documents", tabSearch: "Hit testing", tabAsk: "Ask",
    dropHint: "Drop files here, or", pickFiles: "Choose files", uploads: "Uploads",
    formats: "PDF, Word (.docx), Markdown, HTML and plain text. A file with the same name replaces the document.",
    documents: "Documents", refresh: "Refresh", noDocs: "No documents yet.",
    colName: "File", colSize: "Size", colChunks: "Chunks", colUpdated: "Updated",
    colStatus: "Status", colActions: "Actions",
    query: "Query", topK: "Results (top_k)", threshold: "Score threshold", searchButton: "Test",
    question: "Question", stream: "Stream the answer", askButton: "Ask", citations: "Citations",
    keyHelp: "Needed when the server has a key configured. It is kept in this browser only.",
    keyLabel: "Key", save: "Save", clearKey: "Clear", cancel: "Cancel",
    statusQueued: "Queued", statusProcessing: "Processing", statusReady: "Ready", statusFailed: "Failed",
    uploading: "Uploading {percent}%", uploaded: "Uploaded", waiting: "Waiting", readyChunks: "Ready: {n} chunks",
    processingProgress: "Processing {done}/{total}", failedReason: "Failed: {reason}",
    view: "Chunks", replace: "Replace", remove: "Delete",
    confirmDeleteKb: "Delete the knowledge base “{name}” and all its documents? This cannot be undone.",
    confirmDeleteDoc: "Delete the document “{name}”?", deleted: "Deleted “{name}”.",
    kbCreated: "Created the knowledge base “{name}”.", replacing: "Replace “{name}” with a new file",
    chunkN: "Chunk {n}", chunksOf: "Chunks of {name}", noChunks: "This document has no searchable chunks yet.",
    searching: "Searching…", resultsCount: "{n} results.", noResults: "Nothing reaches the threshold.",
    score: "Score", asking: "Writing the answer…", latency: "{ms} ms", model: "Model: {model}",
    extractive: "The model could not answer in time; this is the best passage",
    verdict_answer: "Answer", verdict_not_found: "Not found", verdict_clarify: "Clarify",
    narrowedTo: "Answering within “{label}”", citeRef: "Open citation {n}",
    errUnauthorized: "A valid API key is required. Use “API key” at the top right.",
    errForbidden: "This key may not do that.",
    errTooLarge: "The file is too large for the server's upload limit.",
    errTooLargeLimit: "The file is too large: uploads are limited to {limit}.",
    uploadLimit: "Up to {limit} per upload.",
    errUnsupported: "Unsupported file type: {message}",
    errEmpty: "The file is empty: {message}",
    errNetwork: "The server cannot be reached. Check the connection and try again.",
    errOther: "Failed ({code}): {message}",
    keySaved: "Key saved.", keyCleared: "Key cleared.",
    tabWechat: "WeChat", loading: "Loading…", wechatAccount: "Official account", wechatState: "Status",
    wechatConnected: "Connected", wechatNotConnected: "Not connected", wechatUrl: "Server URL",
    copy: "Copy", copyUrl: "Copy server URL", copyToken: "Copy Token", copyKey: "Copy EncodingAESKey",
    copied: "Copied.", copyFailed: "Could not copy: select the text and copy it by hand.",
    wechatPortNote: "WeChat only calls public addresses on port 80 (HTTP) or 443 (HTTPS): if this page was not opened at such an address, use the public host and port instead.",
    appId: "AppID", safeMode: "Safe mode", customerService: "Customer-service messages", welcome: "Welcome message",
    safeModeOn: "On (messages encrypted)", safeModeOff: "Off (plain text)",
    customerServiceOn: "On (late answers follow as customer-service messages)", customerServiceOff: "Off",
    defaultWelcome: "(the default greeting)", disconnect: "Disconnect",
    wechatConnect: "Connect an official account", wechatUpdate: "Change the settings",
    wechatReplaceNote: "Each save replaces all the settings. Stored Token and keys are never shown, so enter them again on every save; an empty EncodingAESKey or AppSecret turns safe mode or customer-service messages off.",
    tokenLabel: "Token (3–32 letters or digits, the same as on the WeChat platform)", generate: "Generate",
    generateToken: "Generate Token", generateKey: "Generate EncodingAESKey",
    appIdLabel: "AppID (developer ID)", aesKeyLabel: "EncodingAESKey (optional, 43 characters; turns on safe mode)",
    appSecretLabel: "AppSecret (optional)",
    appSecretHint: "Only for accounts allowed to send customer-service messages (usually verified service accounts): answers that miss WeChat's 5 seconds are then sent that way. Leave it empty otherwise.",
    welcomeLabel: "Welcome message for new followers (optional; empty for the default)", connect: "Connect",
    wechatHelp: "How to connect",
    wechatStep1: "Make this server reachable from the internet: HTTPS on port 443 or HTTP on port 80 (WeChat accepts only those ports).",
    wechatStep2: "In the WeChat Official Accounts Platform (微信公众平台), open 设置与开发 → 基本配置 → 服务器配置 (server settings): note the AppID; make up a Token or generate one here; for safe mode, generate an EncodingAESKey (there or here).",
    wechatStep3: "Enter the Token, AppID and EncodingAESKey here and save.",
    wechatStep4: "Back in the server settings: Server URL (服务器地址) is the address above, Token and EncodingAESKey the same as here, message encryption plain, compatible or safe; submit (WeChat checks it once), then enable (启用).",
    wechatStep5: "Under interface permissions (接口权限), turn on 接收语音识别结果 so voice messages arrive with their recognised text.",
    wechatSaved: "Settings saved. Enter the same server URL, Token and EncodingAESKey on the WeChat platform.",
    wechatDisconnected: "The official account is disconnected.",
    confirmDisconnect: "Disconnect the knowledge base “{name}” from the official account {app_id}? Its messages will no longer be answered.",
    confirmTurnOff: "This turns off: {what}. Stored keys are never shown; enter them again to keep them. Save anyway?",
    turnOffSafeMode: "safe mode (no EncodingAESKey)", turnOffCustomerService: "customer-service messages (no AppSecret)",
    listSeparator: ", ",
    errToken: "The Token must be 3 to 32 letters or digits, the same as in WeChat's server settings.",
    errAppId: "Enter the AppID (the developer ID under 基本配置 on the WeChat platform).",
    errAesKey: "The EncodingAESKey must be 43 letters or digits (use Generate).",
    errInvalid: "Invalid settings: {message}",
  },
};

/** The first Chinese or English entry of the browser's preferences decides; Chinese by default. */
function pickLanguage() {
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const lower = tag.toLowerCase();
    if (lower.startsWith("zh")) return "zh";
    if (lower.startsWith("en")) return "en";
  }
  return "zh";
}

const LANG = pickLanguage();

/** The string `key` in the page's language with `{name}` placeholders filled in. */
function t(key, vars = {}) {
  const template = STRINGS[LANG][key] ?? STRINGS.zh[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** Fills the static text of index.html (written in Chinese) in the page's language. */
function translatePage() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  document.title = `lore · ${t("title")}`;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  if (MAX_UPLOAD_BYTES) $("upload-limit").textContent = t("uploadLimit", { limit: formatBytes(MAX_UPLOAD_BYTES) });
  for (const node of document.querySelectorAll("[data-i18n-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

const $ = (id) => document.getElementById(id);

/** An element with attributes, properties (`on*` handlers, `className`...) and children. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && !key.startsWith("aria") && !key.startsWith("data")) node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

/** The server's upload limit in bytes, written into the page's <meta>; 0 when unknown. */
const MAX_UPLOAD_BYTES = Number(document.querySelector('meta[name="lore-max-upload-bytes"]')?.content) || 0;

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const DATE_FORMAT = new Intl.DateTimeFormat(LANG === "zh" ? "zh-CN" : "en", {
  dateStyle: "short",
  timeStyle: "short",
});

function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : DATE_FORMAT.format(date);
}

// ---------------------------------------------------------------------------------------------
// The API: JSON over fetch, with the key from localStorage, errors as `ApiError`.

const KEY_STORAGE = "lore.apiKey";

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function authHeaders() {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** The error of a failed response, from lore's `{"error":{"code","message"}}` body if it has one. */
async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's page, say): the status alone has to do.
  }
  const error = body?.error ?? {};
  return new ApiError(response.status, error.code ?? `http_${response.status}`, error.message ?? response.statusText);
}

async function request(method, path, body) {
  const headers = { ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", t("errNetwork"));
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function api(method, path, body) {
  const response = await request(method, path, body);
  return response.status === 204 ? null : response.json();
}

const kbPath = (kb) => `/api/kbs/${encodeURIComponent(kb)}`;

/** Words for the person in front of the page; the server's own message where it says more. */
function describeError(err) {
  if (!(err instanceof ApiError)) return t("errOther", { code: "script", message: String(err?.message ?? err) });
  switch (err.status) {
    case 0: return t("errNetwork");
    case 401: return t("errUnauthorized");
    case 403: return t("errForbidden");
    case 413: return MAX_UPLOAD_BYTES ? t("errTooLargeLimit", { limit: formatBytes(MAX_UPLOAD_BYTES) }) : t("errTooLarge");
    case 415: return t("errUnsupported", { message: err.message });
    default:
      if (err.code === "empty_file") return t("errEmpty", { message: err.message });
      return t("errOther", { code: err.code, message: err.message });
  }
}

// ---------------------------------------------------------------------------------------------
// Messages: one banner for errors and confirmations.

/** Confirmations go away by themselves; errors stay until closed or replaced. */
const OK_BANNER_MS = 6000;
let bannerTimer = null;

function showBanner(text, kind = "error") {
  clearTimeout(bannerTimer);
  if (kind === "ok") bannerTimer = setTimeout(hideBanner, OK_BANNER_MS);
  $("banner-text").textContent = text;
  $("banner").className = `banner ${kind}`;
  // Errors interrupt (role=alert); confirmations are announced politely.
  $("banner").setAttribute("role", kind === "error" ? "alert" : "status");
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

/** Shows what went wrong; a missing or wrong key also opens the key dialog. */
function reportError(err) {
  showBanner(describeError(err));
  if (err instanceof ApiError && err.status === 401) openKeyDialog();
}

/** Runs an async UI action, turning failures into messages rather than console errors. */
function guarded(action) {
  return (...args) => Promise.resolve(action(...args)).catch(reportError);
}

// ---------------------------------------------------------------------------------------------
// The API key dialog.

function openKeyDialog() {
  const dialog = $("key-dialog");
  if (dialog.open) return;
  $("key-input").value = localStorage.getItem(KEY_STORAGE) ?? "";
  // Escape closes without a value and would leave the previous choice in place.
  dialog.returnValue = "";
  dialog.showModal();
}

function onKeyDialogClose() {
  const choice = $("key-dialog").returnValue;
  if (choice === "save" && $("key-input").value.trim()) {
    localStorage.setItem(KEY_STORAGE, $("key-input").value.trim());
    showBanner(t("keySaved"), "ok");
  } else if (choice === "clear") {
    localStorage.removeItem(KEY_STORAGE);
    showBanner(t("keyCleared"), "ok");
  } else {
    return;
  }
  guarded(loadKbs)();
}

// ---------------------------------------------------------------------------------------------
// Knowledge bases.

const state = {
  kbs: [],
  kb: null, // the selected knowledge base's id
  documents: [],
  pollTimer: null,
};

async function loadKbs() {
  const { kbs } = await api("GET", "/api/kbs");
  state.kbs = kbs;
  const wanted = state.kb ?? kbInAddress();
  const chosen = kbs.find((kb) => kb.id === wanted) ? wanted : kbs[0]?.id ?? null;
  renderKbList();
  await selectKb(chosen);
}

/** The knowledge base named in the address (`#kb=faq`), so a reload or a link keeps it. */
function kbInAddress() {
  try {
    return decodeURIComponent(location.hash.replace(/^#kb=/, ""));
  } catch {
    return ""; // a hand-edited address that is not valid percent-encoding
  }
}

function renderKbList() {
  const list = $("kb-list");
  list.replaceChildren(
    ...state.kbs.map((kb) =>
      el("li", {},
        el("button", {
          type: "button",
          className: "kb",
          "aria-current": kb.id === state.kb ? "true" : null,
          onclick: guarded(() => selectKb(kb.id)),
        }, el("span", { className: "kb-name" }, kb.name || kb.id), el("span", { className: "kb-id" }, kb.id)),
      ),
    ),
  );
  $("kb-empty").hidden = state.kbs.length > 0;
  // The form is folded away once there is something to pick, so the list comes first on phones.
  if (state.kbs.length === 0) $("kb-new").open = true;
}

async function selectKb(id) {
  stopPolling();
  state.kb = id;
  state.documents = [];
  // Rows of finished uploads go; unfinished ones carry on in the background for their own kb.
  uploads = uploads.filter((u) => !u.settled);
  $("uploads").replaceChildren();
  $("search-results").replaceChildren();
  $("search-status").textContent = "";
  $("ask-result").hidden = true;
  resetWechat();
  renderKbList();
  const kb = state.kbs.find((k) => k.id === id);
  $("kb-view").hidden = !kb;
  $("no-kb").hidden = Boolean(kb);
  if (!kb) {
    history.replaceState(null, "", location.pathname);
    return;
  }
  history.replaceState(null, "", `#kb=${encodeURIComponent(kb.id)}`);
  $("kb-title").textContent = kb.name || kb.id;
  $("kb-description").textContent = kb.description || (kb.name && kb.name !== kb.id ? kb.id : "");
  if (wechatTabSelected()) guarded(loadWechat)();
  await refreshDocuments();
}

async function createKb(event) {
  event.preventDefault();
  const id = $("kb-id").value.trim();
  const name = $("kb-name").value.trim();
  const kb = await api("POST", "/api/kbs", name ? { id, name } : { id });
  $("kb-form").reset();
  $("kb-new").open = false;
  state.kb = kb.id;
  showBanner(t("kbCreated", { name: kb.name || kb.id }), "ok");
  await loadKbs();
  // A new knowledge base is empty: the next thing to do is upload.
  selectTab($("tab-docs"));
  $("file-input").focus();
}

async function deleteKb() {
  const kb = state.kbs.find((k) => k.id === state.kb);
  if (!kb || !confirm(t("confirmDeleteKb", { name: kb.name || kb.id }))) return;
  await api("DELETE", kbPath(kb.id));
  state.kb = null;
  showBanner(t("deleted", { name: kb.name || kb.id }), "ok");
  await loadKbs();
}

// ---------------------------------------------------------------------------------------------
// Tabs (WAI-ARIA tabs pattern: arrow keys move between them).

function tabs() {
  return Array.from(document.querySelectorAll('[role="tab"]'));
}

function selectTab(tab) {
  for (const other of tabs()) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  // The WeChat settings are fetched when the tab is opened, not with every knowledge base.
  if (tab.id === "tab-wechat") guarded(loadWechat)();
}

function onTabKey(event) {
  const all = tabs();
  const index = all.indexOf(event.target);
  const next = {
    ArrowRight: all[(index + 1) % all.length],
    ArrowLeft: all[(index - 1 + all.length) % all.length],
    Home: all[0],
    End: all[all.length - 1],
  }[event.key];
  if (!next) return;
  event.preventDefault();
  selectTab(next);
  next.focus();
}

// ---------------------------------------------------------------------------------------------
// Documents: the table, refreshed every second while anything is queued or processing.

const POLL_MS = 1000;
const BUSY = new Set(["queued", "processing"]);

async function refreshDocuments() {
  const kb = state.kb;
  if (!kb) return;
  const { documents } = await api("GET", `${kbPath(kb)}/documents`);
  if (kb !== state.kb) return; // the user moved on while this was in flight
  state.documents = documents.sort((a, b) => b.updated_at.localeCompare(a.updated_at));
  renderDocuments();
  updateUploadRows();
  schedulePoll();
}

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

function schedulePoll() {
  stopPolling();
  const busy = state.documents.some((d) => BUSY.has(d.status)) || uploads.some((u) => u.kb === state.kb && !u.settled);
  if (busy) state.pollTimer = setTimeout(guarded(refreshDocuments), POLL_MS);
}

function renderDocuments() {
  const rows = state.documents.map(documentRow);
  $("docs-body").replaceChildren(...rows);
  $("docs-table").hidden = rows.length === 0;
  $("docs-empty").hidden = rows.length > 0;
}

function documentRow(doc) {
  // `data-label` names each cell on narrow screens, where the table becomes cards.
  const cell = (labelKey, ...children) => el("td", { "data-label": t(labelKey), className: `col-${labelKey}` }, ...children);
  return el("tr", { "data-doc": doc.id, "data-status": doc.status },
    el("th", { scope: "row", className: "doc-name" }, doc.name),
    cell("colSize", formatBytes(doc.size_bytes)),
    cell("colChunks", doc.status === "ready" ? String(doc.chunk_count) : doc.chunk_count ? `${doc.chunks_done}/${doc.chunk_count}` : "–"),
    cell("colUpdated", el("time", { dateTime: doc.updated_at }, formatTime(doc.updated_at))),
    cell("colStatus", statusView(doc)),
    cell("colActions", el("div", { className: "row" },
      el("button", { type: "button", className: "secondary small", "aria-label": `${t("view")} ${doc.name}`, disabled: doc.status !== "ready" && !doc.version, onclick: guarded(() => showChunks(doc)) }, t("view")),
      el("button", { type: "button", className: "secondary small", "aria-label": `${t("replace")} ${doc.name}`, onclick: () => pickReplacement(doc) }, t("replace")),
      el("button", { type: "button", className: "danger small", "aria-label": `${t("remove")} ${doc.name}`, onclick: guarded(() => deleteDocument(doc)) }, t("remove")),
    )),
  );
}

/** The status badge, with a progress bar while chunks are being embedded. */
function statusView(doc) {
  const wrapper = el("div", { className: `status status-${doc.status}` });
  switch (doc.status) {
    case "processing": {
      const total = doc.chunk_count || 0;
      wrapper.append(
        el("span", { className: "badge" }, total ? t("processingProgress", { done: doc.chunks_done, total }) : t("statusProcessing")),
        total ? el("progress", { max: total, value: doc.chunks_done, "aria-label": `${doc.name} ${t("statusProcessing")}` }) : null,
      );
      break;
    }
    case "failed":
      wrapper.append(el("span", { className: "badge" }, t("statusFailed")), el("span", { className: "reason" }, doc.error || ""));
      break;
    default:
      wrapper.append(el("span", { className: "badge" }, t(doc.status === "ready" ? "statusReady" : "statusQueued")));
  }
  return wrapper;
}

async function deleteDocument(doc) {
  if (!confirm(t("confirmDeleteDoc", { name: doc.name }))) return;
  await api("DELETE", `${kbPath(state.kb)}/documents/${encodeURIComponent(doc.id)}`);
  showBanner(t("deleted", { name: doc.name }), "ok");
  await refreshDocuments();
}

async function showChunks(doc) {
  const { chunks } = await api("GET", `${kbPath(state.kb)}/documents/${encodeURIComponent(doc.id)}/chunks`);
  const items = chunks.map((chunk) =>
    el("li", { className: "chunk" },
      el("p", { className: "chunk-meta" }, t("chunkN", { n: chunk.chunk_index + 1 }), chunk.heading_path?.length ? ` · ${chunk.heading_path.join(" › ")}` : ""),
      el("p", { className: "chunk-text" }, chunk.text),
    ),
  );
  openChunkDialog(t("chunksOf", { name: doc.name }), items.length ? el("ol", { className: "chunk-list" }, items) : el("p", {}, t("noChunks")));
}

function openChunkDialog(title, content) {
  $("chunk-title").textContent = title;
  $("chunk-body").replaceChildren(content);
  $("chunk-dialog").showModal();
}

// ---------------------------------------------------------------------------------------------
// Uploads: one request per file (so each has its own progress bar and its own refusal), two at
// a time; then the row follows the document's ingestion status from the table's polling.

const PARALLEL_UPLOADS = 2;
// { kb, file, name, row, docId, acceptedAt, sent, settled }: `settled` once ready or failed.
let uploads = [];
let activeUploads = 0;

function enqueueUploads(files, nameOverride) {
  for (const file of files) {
    const upload = { kb: state.kb, file, name: nameOverride ?? file.name, docId: null, sent: false, settled: false };
    upload.row = uploadRow(upload);
    $("uploads").prepend(upload.row.item);
    uploads.push(upload);
    // Refused here rather than after sending it all: the server would answer 413 anyway.
    if (MAX_UPLOAD_BYTES && file.size > MAX_UPLOAD_BYTES) {
      upload.sent = true;
      failUpload(upload, new ApiError(413, "payload_too_large", ""));
    }
  }
  pumpUploads();
}

function uploadRow(upload) {
  const progress = el("progress", { max: 100, value: 0, "aria-label": upload.name });
  const status = el("span", { className: "upload-status" }, t("waiting"));
  const item = el("li", { className: "upload", "data-name": upload.name },
    el("span", { className: "upload-name" }, upload.name, el("span", { className: "muted small" }, ` ${formatBytes(upload.file.size)}`)),
    progress,
    status,
  );
  return { item, progress, status };
}

function pumpUploads() {
  while (activeUploads < PARALLEL_UPLOADS) {
    const next = uploads.find((u) => !u.sent);
    if (!next) return;
    next.sent = true;
    activeUploads += 1;
    sendUpload(next).finally(() => {
      activeUploads -= 1;
      pumpUploads();
    });
  }
}

/** Sends one file with XHR, whose upload events (unlike fetch's) report transfer progress. */
function sendUpload(upload) {
  const { kb } = upload;
  return new Promise((resolve) => {
    const form = new FormData();
    form.append("file", upload.file, upload.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${kbPath(kb)}/documents`);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((event.loaded / event.total) * 100);
      upload.row.progress.value = percent;
      upload.row.status.textContent = t("uploading", { percent });
    });
    xhr.addEventListener("load", () => {
      onUploadResponse(upload, xhr.status, xhr.response, kb);
      resolve();
    });
    xhr.addEventListener("error", () => {
      failUpload(upload, new ApiError(0, "network", t("errNetwork")));
      resolve();
    });
    xhr.send(form);
  });
}

function onUploadResponse(upload, status, body, kb) {
  if (status !== 202) {
    const error = body?.error ?? {};
    const err = new ApiError(status, error.code ?? `http_${status}`, error.message ?? "");
    failUpload(upload, err);
    if (status === 401) reportError(err);
    // A refused file is still listed (failed, with its reason): show it in the table too.
    if (kb === state.kb) guarded(refreshDocuments)();
    return;
  }
  const doc = body.documents[0];
  upload.docId = doc.id;
  upload.acceptedAt = Date.parse(doc.updated_at);
  upload.row.progress.value = 100;
  if (doc.status === "failed") {
    failUpload(upload, new ApiError(415, doc.error_code ?? "failed", doc.error ?? ""));
  } else {
    upload.row.status.textContent = t("uploaded");
  }
  if (kb === state.kb) guarded(refreshDocuments)();
}

function failUpload(upload, err) {
  upload.settled = true;
  upload.row.item.dataset.status = "failed";
  upload.row.status.textContent = describeError(err);
}

/** After a successful transfer, each row shows its document's ingestion status. */
function updateUploadRows() {
  for (const upload of uploads) {
    if (upload.kb !== state.kb || upload.settled || !upload.docId) continue;
    const doc = state.documents.find((d) => d.id === upload.docId);
    // A listing older than the upload still shows the replaced version: not this upload's status.
    if (!doc || Date.parse(doc.updated_at) < upload.acceptedAt) continue;
    upload.row.item.dataset.status = doc.status;
    upload.row.status.textContent = uploadStatusText(doc);
    if (doc.chunk_count && doc.status !== "failed") {
      upload.row.progress.max = doc.chunk_count;
      upload.row.progress.value = doc.status === "ready" ? doc.chunk_count : doc.chunks_done;
    }
    upload.settled = !BUSY.has(doc.status);
  }
}

function uploadStatusText(doc) {
  switch (doc.status) {
    case "queued": return t("statusQueued");
    case "processing": return doc.chunk_count ? t("processingProgress", { done: doc.chunks_done, total: doc.chunk_count }) : t("statusProcessing");
    case "ready": return t("readyChunks", { n: doc.chunk_count });
    default: return t("failedReason", { reason: doc.error ?? "" });
  }
}

let replaceTarget = null;

function pickReplacement(doc) {
  replaceTarget = doc;
  $("replace-input").setAttribute("aria-label", t("replacing", { name: doc.name }));
  $("replace-input").click();
}

function onReplaceChosen() {
  const [file] = $("replace-input").files;
  // Sent under the document's name: the name is what identifies the document to replace.
  if (file && replaceTarget) enqueueUploads([file], replaceTarget.name);
  $("replace-input").value = "";
  replaceTarget = null;
}

function setUpDropzone() {
  const zone = $("dropzone");
  // Files dropped anywhere else must not make the browser navigate away to them.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer?.files?.length) enqueueUploads(Array.from(event.dataTransfer.files));
  });
  $("file-input").addEventListener("change", () => {
    enqueueUploads(Array.from($("file-input").files));
    $("file-input").value = "";
  });
}

// ---------------------------------------------------------------------------------------------
// Query terms, highlighted safely: text nodes and <mark> elements, never HTML.

const HAN = /\p{Script=Han}/u;
const WORD = /[\p{L}\p{N}]/u;
/** Longest Chinese term taken from a query; longer runs are covered by their pieces. */
const MAX_HAN_TERM = 8;

/** Terms of a query: Latin words and numbers of 2+ characters, and every 2-8 character stretch
 *  of its Chinese (there are no spaces to split on, so any shared stretch counts). */
function queryTerms(query) {
  const terms = new Set();
  for (const run of query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    for (const part of run.match(/\p{Script=Han}+|[^\p{Script=Han}]+/gu) ?? []) {
      const chars = Array.from(part);
      if (!HAN.test(chars[0])) {
        if (chars.length >= 2) terms.add(part);
        continue;
      }
      for (let start = 0; start < chars.length; start++) {
        for (let len = 2; len <= MAX_HAN_TERM && start + len <= chars.length; len++) {
          terms.add(chars.slice(start, start + len).join(""));
        }
      }
    }
  }
  const maxLength = Math.max(0, ...Array.from(terms, (term) => Array.from(term).length));
  return { terms, maxLength };
}

const isLatinWordChar = (c) => c !== undefined && WORD.test(c) && !HAN.test(c);

/** Length of the longest term at `i`; Latin terms must be whole words ("is" not in "this"). */
function termAt(lower, i, { terms, maxLength }) {
  for (let len = Math.min(maxLength, lower.length - i); len >= 2; len--) {
    const candidate = lower.slice(i, i + len).join("");
    if (!terms.has(candidate)) continue;
    const first = lower[i];
    const last = lower[i + len - 1];
    if (isLatinWordChar(first) && isLatinWordChar(lower[i - 1])) continue;
    if (isLatinWordChar(last) && isLatinWordChar(lower[i + len])) continue;
    return len;
  }
  return 0;
}

/** `text` as nodes, with the query's terms in <mark>. */
function highlighted(text, query) {
  const found = queryTerms(query);
  const chars = Array.from(text);
  const lower = chars.map((c) => c.toLowerCase());
  const nodes = [];
  let plainFrom = 0;
  let i = 0;
  while (i < chars.length) {
    const len = found.maxLength ? termAt(lower, i, found) : 0;
    if (!len) {
      i += 1;
      continue;
    }
    if (plainFrom < i) nodes.push(document.createTextNode(chars.slice(plainFrom, i).join("")));
    nodes.push(el("mark", {}, chars.slice(i, i + len).join("")));
    i += len;
    plainFrom = i;
  }
  if (plainFrom < chars.length) nodes.push(document.createTextNode(chars.slice(plainFrom).join("")));
  return nodes;
}

// ---------------------------------------------------------------------------------------------
// Hit testing.

async function runSearch(event) {
  event.preventDefault();
  const query = $("search-query").value.trim();
  if (!query) return;
  const body = {
    query,
    top_k: Number($("search-top-k").value) || 5,
    score_threshold: Number($("search-threshold").value),
  };
  $("search-status").textContent = t("searching");
  $("search-results").replaceChildren();
  try {
    const { records } = await api("POST", `${kbPath(state.kb)}/search`, body);
    $("search-status").textContent = records.length ? t("resultsCount", { n: records.length }) : t("noResults");
    $("search-results").replaceChildren(...records.map((record) => resultItem(record, query)));
  } catch (err) {
    $("search-status").textContent = "";
    throw err;
  }
}

function scoreBar(score) {
  const fill = el("span", { className: "fill" });
  fill.style.width = `${Math.round(Math.max(0, Math.min(1, score)) * 100)}%`;
  return el("span", { className: "score" },
    el("span", { className: "bar", "aria-hidden": "true" }, fill),
    el("span", { className: "score-value" }, `${t("score")} ${score.toFixed(3)}`),
  );
}

function resultItem(record, query) {
  const path = record.heading_path?.length ? record.heading_path.join(" › ") : "";
  return el("li", { className: "result", "data-document": record.document_name },
    el("div", { className: "result-head" },
      scoreBar(record.score),
      el("span", { className: "source" }, record.document_name, el("span", { className: "muted" }, ` · ${t("chunkN", { n: record.chunk_index + 1 })}`)),
    ),
    path ? el("p", { className: "muted small" }, path) : null,
    el("p", { className: "chunk-text" }, highlighted(record.content, query)),
  );
}

// ---------------------------------------------------------------------------------------------
// Asking: JSON or server-sent events (`start`, `delta`..., `done`).

let lastQuestion = "";
let lastOption = null; // the clarification option the current answer is narrowed to

async function ask(event) {
  event.preventDefault();
  const question = $("ask-question").value.trim();
  if (question) await askQuestion(question, null);
}

/** Asks `question`, within one document when the user picked a clarification option. */
async function askQuestion(question, option) {
  lastQuestion = question;
  lastOption = option;
  const body = { question, stream: $("ask-stream").checked };
  if (option) {
    body.filter = {
      logical_operator: "and",
      conditions: [{ name: "document_id", comparison_operator: "is", value: option.document_id }],
    };
  }
  startAnswer(option);
  const submit = $("ask-form").querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    if (body.stream) await askStreaming(body);
    else finishAnswer(await api("POST", `${kbPath(state.kb)}/answer`, body));
  } catch (err) {
    $("ask-result").hidden = true;
    throw err;
  } finally {
    submit.disabled = false;
  }
}

async function askStreaming(body) {
  const response = await request("POST", `${kbPath(state.kb)}/answer`, body);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      onAnswerEvent(parseSse(buffer.slice(0, end)));
      buffer = buffer.slice(end + 2);
    }
  }
}

/** One server-sent event block as { event, data }. */
function parseSse(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return { event, data: data.join("\n") };
}

function onAnswerEvent({ event, data }) {
  if (event === "error") throw new ApiError(500, "internal", data);
  if (!data) return;
  const payload = JSON.parse(data);
  if (event === "start") showVerdict(payload);
  else if (event === "delta") $("ask-answer").append(payload.text);
  else if (event === "done") finishAnswer(payload);
}

function startAnswer(option) {
  $("ask-result").hidden = false;
  $("ask-verdict").textContent = "";
  $("ask-verdict").className = "verdict";
  $("ask-meta").textContent = option ? t("narrowedTo", { label: option.label }) : t("asking");
  $("ask-answer").replaceChildren();
  $("ask-options").replaceChildren();
  $("ask-citations").replaceChildren();
  $("ask-citations-heading").hidden = true;
}

/** Verdict, options and citations: known before the first word of the answer. */
function showVerdict({ verdict, citations, options }) {
  $("ask-result").dataset.verdict = verdict;
  $("ask-verdict").textContent = t(`verdict_${verdict}`);
  $("ask-verdict").className = `verdict verdict-${verdict}`;
  $("ask-options").replaceChildren(
    ...options.map((option) =>
      el("button", { type: "button", className: "option", onclick: guarded(() => askQuestion(lastQuestion, option)) }, option.label),
    ),
  );
  $("ask-citations").replaceChildren(...citations.map((citation, i) => citationItem(citation, i + 1)));
  $("ask-citations-heading").hidden = citations.length === 0;
}

function citationItem(citation, n) {
  return el("li", { className: "citation" },
    el("button", { type: "button", className: "link", onclick: () => openCitation(citation, n) },
      `[${n}] ${citation.document_name} · ${t("chunkN", { n: citation.chunk_index + 1 })}`),
    el("span", { className: "muted small" }, ` ${t("score")} ${citation.score.toFixed(3)}`),
  );
}

function openCitation(citation, n) {
  openChunkDialog(`[${n}] ${citation.document_name} · ${t("chunkN", { n: citation.chunk_index + 1 })}`,
    el("p", { className: "chunk-text" }, highlighted(citation.content, lastQuestion)));
}

/** The whole reply: the final text, with its [n] marks as buttons that open the citation. */
function finishAnswer(reply) {
  showVerdict(reply);
  $("ask-answer").replaceChildren(...answerNodes(reply.answer, reply.citations));
  const meta = [t("latency", { ms: reply.latency_ms })];
  if (lastOption) meta.unshift(t("narrowedTo", { label: lastOption.label }));
  if (reply.model) meta.unshift(t("model", { model: reply.model }));
  if (reply.fallback === "extractive") meta.unshift(t("extractive"));
  $("ask-meta").textContent = meta.join(" · ");
}

function answerNodes(text, citations) {
  return text.split(/(\[\d+\])/).map((part) => {
    const n = Number(part.match(/^\[(\d+)\]$/)?.[1]);
    const citation = citations[n - 1];
    if (!citation) return document.createTextNode(part);
    return el("button", { type: "button", className: "cite-ref", "aria-label": t("citeRef", { n }), onclick: () => openCitation(citation, n) }, part);
  });
}

// ---------------------------------------------------------------------------------------------
// The WeChat official account of the selected knowledge base. The server never returns the
// secrets (Token, EncodingAESKey, AppSecret), so the form never shows stored ones: each save
// sends the whole account again.

// { kb, view }: the view is GET /api/kbs/{kb}/wechat's answer, null until it has arrived.
const wechat = { kb: null, view: null };

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** `length` random letters and digits, uniformly (bytes past the last whole 62 are skipped). */
function randomAlphanumeric(length) {
  const limit = 256 - (256 % ALPHANUMERIC.length);
  let out = "";
  while (out.length < length) {
    for (const byte of crypto.getRandomValues(new Uint8Array(length * 2))) {
      if (byte < limit && out.length < length) out += ALPHANUMERIC[byte % ALPHANUMERIC.length];
    }
  }
  return out;
}

/** The settings form's fields, by the API's names. */
const WECHAT_FIELDS = {
  token: "wechat-token",
  app_id: "wechat-app-id-input",
  encoding_aes_key: "wechat-aes-key",
  app_secret: "wechat-app-secret",
  welcome: "wechat-welcome-input",
};

function wechatTabSelected() {
  return $("tab-wechat").getAttribute("aria-selected") === "true";
}

/** Forgets the previous knowledge base's account, typed secrets included. */
function resetWechat() {
  wechat.kb = null;
  wechat.view = null;
  $("wechat-form").reset();
  clearWechatError();
  $("wechat-loading").hidden = false;
  $("wechat-facts").hidden = true;
  $("wechat-disconnect").hidden = true;
}

async function loadWechat() {
  const kb = state.kb;
  if (!kb) return;
  const view = await api("GET", `${kbPath(kb)}/wechat`);
  if (kb !== state.kb) return; // the user moved on while this was in flight
  // The form is filled in once per knowledge base: coming back to the tab keeps what was typed.
  const fresh = wechat.kb !== kb;
  if (fresh) {
    $("wechat-form").reset();
    clearWechatError();
  }
  wechat.kb = kb;
  showWechat(view, fresh);
}

/** The account's public view; with `fill`, its AppID and welcome text (not secrets) go into the
 *  form too. */
function showWechat(view, fill) {
  wechat.view = view;
  const connected = Boolean(view.configured);
  $("wechat-loading").hidden = true;
  $("wechat-facts").hidden = false;
  $("wechat-facts").dataset.connected = String(connected);
  $("wechat-state").textContent = t(connected ? "wechatConnected" : "wechatNotConnected");
  $("wechat-state").className = `badge ${connected ? "badge-ok" : ""}`;
  $("wechat-url").textContent = `${location.origin}${view.server_path}`;
  $("wechat-port-note").hidden = reachableByWechat(location);
  for (const node of document.querySelectorAll("#wechat-facts .when-connected")) node.hidden = !connected;
  $("wechat-disconnect").hidden = !connected;
  $("wechat-form-heading").textContent = t(connected ? "wechatUpdate" : "wechatConnect");
  $("wechat-save").textContent = t(connected ? "save" : "connect");
  if (!connected) return;
  $("wechat-app-id").textContent = view.app_id;
  $("wechat-safe-mode").textContent = t(view.safe_mode ? "safeModeOn" : "safeModeOff");
  $("wechat-safe-mode").dataset.on = String(view.safe_mode);
  $("wechat-customer-service").textContent = t(view.customer_service ? "customerServiceOn" : "customerServiceOff");
  $("wechat-customer-service").dataset.on = String(view.customer_service);
  $("wechat-welcome").textContent = view.welcome ?? t("defaultWelcome");
  if (!fill) return;
  $(WECHAT_FIELDS.app_id).value = view.app_id;
  $(WECHAT_FIELDS.welcome).value = view.welcome ?? "";
}

/** Whether WeChat could call this address as it is: a public host on port 80 or 443. */
function reachableByWechat({ hostname, port }) {
  const local = /^(localhost|127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|\[?::1\]?$)/.test(hostname);
  return !local && (port === "" || port === "80" || port === "443");
}

async function saveWechat(event) {
  event.preventDefault();
  clearWechatError();
  const value = (name) => $(WECHAT_FIELDS[name]).value.trim();
  const body = { token: value("token"), app_id: value("app_id") };
  for (const name of ["encoding_aes_key", "app_secret", "welcome"]) {
    if (value(name)) body[name] = name === "welcome" ? $(WECHAT_FIELDS.welcome).value : value(name);
  }
  // Saving replaces the account: say so before an empty key silently turns a feature off.
  const current = wechat.view;
  const turnedOff = [];
  if (current?.safe_mode && !body.encoding_aes_key) turnedOff.push(t("turnOffSafeMode"));
  if (current?.customer_service && !body.app_secret) turnedOff.push(t("turnOffCustomerService"));
  if (turnedOff.length && !confirm(t("confirmTurnOff", { what: turnedOff.join(t("listSeparator")) }))) return;
  const kb = state.kb;
  const submit = $("wechat-save");
  submit.disabled = true;
  try {
    const view = await api("PUT", `${kbPath(kb)}/wechat`, body);
    if (kb !== state.kb) return;
    // The AppSecret is not needed again; Token and key stay so they can be copied into WeChat.
    $(WECHAT_FIELDS.app_secret).value = "";
    showWechat(view, true);
    showBanner(t("wechatSaved"), "ok");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) throw err;
    showWechatError(err.message);
  } finally {
    submit.disabled = false;
  }
}

/** The server's validation message, in the page's words where it is a known one, next to the
 *  form; the field it is about is marked invalid and focused. */
function showWechatError(message) {
  const lower = message.toLowerCase();
  const [field, key] = lower.includes("encodingaeskey") ? ["encoding_aes_key", "errAesKey"]
    : lower.startsWith("token") ? ["token", "errToken"]
    : lower.includes("app_id") ? ["app_id", "errAppId"]
    : [null, null];
  $("wechat-error").textContent = key ? t(key) : t("errInvalid", { message });
  $("wechat-error").hidden = false;
  if (field) {
    $(WECHAT_FIELDS[field]).setAttribute("aria-invalid", "true");
    $(WECHAT_FIELDS[field]).focus();
  }
}

function clearWechatError() {
  $("wechat-error").hidden = true;
  $("wechat-error").textContent = "";
  for (const id of Object.values(WECHAT_FIELDS)) $(id).removeAttribute("aria-invalid");
}

async function disconnectWechat() {
  const kb = state.kbs.find((k) => k.id === state.kb);
  if (!kb || !wechat.view?.configured) return;
  if (!confirm(t("confirmDisconnect", { name: kb.name || kb.id, app_id: wechat.view.app_id }))) return;
  await api("DELETE", `${kbPath(kb.id)}/wechat`);
  showBanner(t("wechatDisconnected"), "ok");
  $("wechat-form").reset();
  clearWechatError();
  await loadWechat();
  $("wechat-token").focus();
}

/** Copies a field's or element's text: the Clipboard API where the browser allows it (https,
 *  localhost), else by selecting it and the old copy command. */
async function copyField(button) {
  const node = $(button.dataset.copy);
  const text = node instanceof HTMLInputElement ? node.value : node.textContent;
  if (!text) return;
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    if (node instanceof HTMLInputElement) node.select();
    else window.getSelection().selectAllChildren(node);
    copied = document.execCommand("copy");
  }
  showBanner(t(copied ? "copied" : "copyFailed"), copied ? "ok" : "error");
}

function setUpWechat() {
  $("wechat-form").addEventListener("submit", guarded(saveWechat));
  $("wechat-disconnect").addEventListener("click", guarded(disconnectWechat));
  for (const button of document.querySelectorAll("[data-generate]")) {
    button.addEventListener("click", () => {
      const input = $(button.dataset.generate);
      input.value = randomAlphanumeric(Number(button.dataset.length));
      input.removeAttribute("aria-invalid");
    });
  }
  // A corrected field loses its mark; the message stays until the next save.
  for (const id of Object.values(WECHAT_FIELDS)) {
    $(id).addEventListener("input", () => $(id).removeAttribute("aria-invalid"));
  }
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", guarded(() => copyField(button)));
  }
}

// ---------------------------------------------------------------------------------------------
// Start.

function wireEvents() {
  $("banner-close").addEventListener("click", hideBanner);
  $("key-button").addEventListener("click", openKeyDialog);
  $("key-dialog").addEventListener("close", onKeyDialogClose);
  $("kb-form").addEventListener("submit", guarded(createKb));
  $("kb-delete").addEventListener("click", guarded(deleteKb));
  for (const tab of tabs()) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", onTabKey);
  }
  $("docs-refresh").addEventListener("click", guarded(refreshDocuments));
  $("replace-input").addEventListener("change", onReplaceChosen);
  $("search-form").addEventListener("submit", guarded(runSearch));
  $("search-threshold").addEventListener("input", () => {
    $("threshold-value").textContent = Number($("search-threshold").value).toFixed(2);
  });
  $("ask-form").addEventListener("submit", guarded(ask));
  setUpDropzone();
  setUpWechat();
}

translatePage();
wireEvents();
guarded(loadKbs)();
