// The WeChat official-account settings on the page, against a lore that requires an API key
// ($LORE_URL, key $LORE_KEY): connect an account with a generated Token and EncodingAESKey, see
// the server URL and safe mode, reload and find no secret anywhere in the page, be told why a
// bad Token is refused, confirm before an update drops safe mode, disconnect; the API itself
// never returns the secrets. Phone width, keyboard and English too. Screenshots: 20-*.png.

import assert from "node:assert/strict";
import path from "node:path";

import { openPage, screenshotDir, stepper, unexpectedProblems } from "./browser.mjs";

const BASE = process.env.LORE_URL;
const KEY = process.env.LORE_KEY;
assert.ok(BASE && KEY, "set LORE_URL and LORE_KEY (tests/api/web.rs does)");

const APP_ID = "wx0123456789abcdef";
const APP_SECRET = "app-secret-0123456789abcdef";
const WELCOME = "欢迎关注！直接发送问题即可。";

const shots = screenshotDir();
const step = stepper();

async function shoot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** A page that already has the API key, as after entering it once. */
async function keyedPage(options) {
  const opened = await openPage(options);
  await opened.page.addInitScript((key) => localStorage.setItem("lore.apiKey", key), KEY);
  return opened;
}

/** GET /api/kbs/faq/wechat from inside the page, with the key, as any client would. */
async function fetchSettings(page) {
  return page.evaluate(async (key) => {
    const response = await fetch("/api/kbs/faq/wechat", { headers: { Authorization: `Bearer ${key}` } });
    return { status: response.status, text: await response.text() };
  }, KEY);
}

/** Everything the page holds as text: its markup and the values typed into its fields. */
async function pageText(page) {
  return page.evaluate(() =>
    [document.documentElement.outerHTML, ...Array.from(document.querySelectorAll("input, textarea"), (f) => f.value)].join("\n"),
  );
}

const facts = (page) => page.locator("#wechat-facts");

async function openWechatTab(page) {
  await page.getByRole("tab", { name: "微信公众号" }).click();
  await facts(page).waitFor();
}

async function connect(page) {
  await page.getByLabel("标识（小写字母、数字、- 或 _）").fill("faq");
  await page.getByLabel("名称（可选）").fill("客服知识库");
  await page.getByRole("button", { name: "创建", exact: true }).click();
  await page.locator("#kb-title", { hasText: "客服知识库" }).waitFor();

  await openWechatTab(page);
  await facts(page).getByText("未连接").waitFor();
  assert.equal(await page.getByLabel("服务器地址 (URL)").textContent(), `${BASE}/wechat/faq`);
  // The test server listens on 127.0.0.1 with a high port: the page says WeChat cannot call it.
  assert.ok(await page.locator("#wechat-port-note").isVisible(), "port 80/443 note");
  assert.ok(await page.getByRole("button", { name: "断开连接" }).isHidden(), "nothing to disconnect yet");
  // The steps from the README, folded away until opened.
  await page.getByText("接入步骤").click();
  await page.getByText("接收语音识别结果").waitFor();

  const token = page.getByLabel(/^Token/);
  const key = page.getByLabel(/^EncodingAESKey/);
  await page.getByRole("button", { name: "生成 Token" }).click();
  const firstToken = await token.inputValue();
  assert.match(firstToken, /^[A-Za-z0-9]{32}$/);
  await page.getByRole("button", { name: "生成 Token" }).click();
  assert.notEqual(await token.inputValue(), firstToken, "each generated Token is new");
  await page.getByRole("button", { name: "生成 EncodingAESKey" }).click();
  assert.match(await key.inputValue(), /^[A-Za-z0-9]{43}$/);
  await page.getByLabel(/^AppID/).fill(APP_ID);
  const secret = page.getByLabel(/^AppSecret/);
  assert.equal(await secret.getAttribute("type"), "password");
  await secret.fill(APP_SECRET);
  await page.getByLabel(/欢迎语/).fill(WELCOME);
  await shoot(page, "20-wechat-form");
  const secrets = { token: await token.inputValue(), key: await key.inputValue(), secret: APP_SECRET };

  await page.getByRole("button", { name: "连接", exact: true }).click();
  await facts(page).getByText("已连接").waitFor();
  assert.equal(await page.locator("#wechat-app-id").textContent(), APP_ID);
  assert.equal(await page.locator("#wechat-safe-mode").getAttribute("data-on"), "true");
  assert.match(await page.locator("#wechat-safe-mode").textContent(), /开启/);
  assert.equal(await page.locator("#wechat-customer-service").getAttribute("data-on"), "true");
  assert.equal(await page.locator("#wechat-welcome").textContent(), WELCOME);
  assert.equal(await secret.inputValue(), "", "the AppSecret field is emptied once saved");
  await page.getByRole("status").filter({ hasText: "已保存公众号配置" }).waitFor();
  await page.getByRole("button", { name: "复制服务器地址" }).click();
  await page.getByRole("status").filter({ hasText: "已复制" }).waitFor();
  await shoot(page, "21-wechat-connected");
  step("connected with a generated Token and EncodingAESKey: safe mode on");
  return secrets;
}

async function noSecretsAfterReload(page, secrets) {
  const { status, text } = await fetchSettings(page);
  assert.equal(status, 200);
  const view = JSON.parse(text);
  assert.deepEqual(Object.keys(view).sort(), ["app_id", "configured", "customer_service", "safe_mode", "server_path", "welcome"]);
  assert.deepEqual(view, {
    configured: true,
    server_path: "/wechat/faq",
    app_id: APP_ID,
    safe_mode: true,
    customer_service: true,
    welcome: WELCOME,
  });
  for (const value of Object.values(secrets)) assert.ok(!text.includes(value), "GET returns no secret");

  await page.reload();
  await page.locator("#kb-title", { hasText: "客服知识库" }).waitFor();
  await openWechatTab(page);
  await facts(page).getByText("已连接").waitFor();
  assert.equal(await page.locator("#wechat-safe-mode").getAttribute("data-on"), "true");
  assert.equal(await page.getByLabel(/^AppID/).inputValue(), APP_ID, "AppID (not a secret) is filled in");
  assert.equal(await page.getByLabel(/^Token/).inputValue(), "");
  assert.equal(await page.getByLabel(/^EncodingAESKey/).inputValue(), "");
  const everything = await pageText(page);
  for (const [what, value] of Object.entries(secrets)) assert.ok(!everything.includes(value), `the ${what} is not in the page`);
  assert.equal(await page.getByRole("button", { name: "保存", exact: true }).count(), 1, "the form now saves");
  step("persisted across a reload; no secret in the page or in GET");
}

async function refusals(page, secrets) {
  const puts = [];
  page.on("request", (request) => {
    if (request.method() === "PUT") puts.push(request.url());
  });
  // Without the keys again, saving would turn safe mode and customer service off: asked first.
  await page.getByLabel(/^Token/).fill(secrets.token);
  let asked = "";
  page.once("dialog", (dialog) => {
    asked = dialog.message();
    dialog.dismiss();
  });
  await page.getByRole("button", { name: "保存", exact: true }).click();
  await page.waitForTimeout(300);
  assert.match(asked, /安全模式/);
  assert.match(asked, /客服消息/);
  assert.deepEqual(puts, [], "nothing is sent when the confirmation is dismissed");

  // A bad Token: the server's refusal shows next to the form, on the field.
  await page.getByLabel(/^Token/).fill("bad token!");
  await page.getByLabel(/^EncodingAESKey/).fill(secrets.key);
  await page.getByLabel(/^AppSecret/).fill(secrets.secret);
  await page.getByRole("button", { name: "保存", exact: true }).click();
  const error = page.locator("#wechat-form").getByRole("alert");
  await error.filter({ hasText: "Token 须为 3–32 位字母或数字" }).waitFor();
  assert.equal(puts.length, 1);
  assert.equal(await page.getByLabel(/^Token/).getAttribute("aria-invalid"), "true");
  assert.ok(await page.getByLabel(/^Token/).evaluate((input) => input === document.activeElement), "the bad field is focused");
  await shoot(page, "22-wechat-bad-token");
  // Still connected as before.
  assert.equal(JSON.parse((await fetchSettings(page)).text).configured, true);

  // A short EncodingAESKey gets its own words.
  await page.getByLabel(/^Token/).fill(secrets.token);
  await page.getByLabel(/^EncodingAESKey/).fill("tooShort");
  await page.getByRole("button", { name: "保存", exact: true }).click();
  await error.filter({ hasText: "EncodingAESKey 须为 43 位" }).waitFor();
  assert.equal(await page.getByLabel(/^Token/).getAttribute("aria-invalid"), null, "the old mark is gone");
  await page.getByLabel(/^EncodingAESKey/).fill(secrets.key);
  assert.equal(await page.getByLabel(/^EncodingAESKey/).getAttribute("aria-invalid"), null, "corrected: no longer marked");
  step("a bad Token and a short key are explained; dropping safe mode is confirmed first");
}

async function keyboardAndPhone(page) {
  await page.getByRole("tab", { name: "文档" }).click();
  await page.getByRole("tab", { name: "文档" }).focus();
  await page.keyboard.press("End");
  assert.equal(await page.getByRole("tab", { name: "微信公众号" }).getAttribute("aria-selected"), "true");
  await facts(page).getByText("已连接").waitFor();
  await page.keyboard.press("Tab");
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at phone width`);
  for (const name of ["生成 Token", "生成 EncodingAESKey", "复制服务器地址"]) {
    const box = await page.getByRole("button", { name }).boundingBox();
    assert.ok(box && box.x + box.width <= 390, `${name} fits at phone width`);
  }
  await shoot(page, "23-wechat-phone");
  await page.setViewportSize({ width: 1280, height: 900 });
  step("keyboard and phone width");
}

async function disconnect(page) {
  let asked = "";
  page.once("dialog", (dialog) => {
    asked = dialog.message();
    dialog.accept();
  });
  await page.getByRole("button", { name: "断开连接" }).click();
  await facts(page).getByText("未连接").waitFor();
  assert.match(asked, /客服知识库/);
  assert.match(asked, new RegExp(APP_ID));
  assert.ok(await page.getByRole("button", { name: "断开连接" }).isHidden());
  assert.equal(await page.getByRole("button", { name: "连接", exact: true }).count(), 1);
  assert.deepEqual(JSON.parse((await fetchSettings(page)).text), { configured: false, server_path: "/wechat/faq" });
  step("disconnected after confirmation");
}

async function english() {
  const { page, problems, close } = await keyedPage({ locale: "en-US" });
  try {
    await page.goto(`${BASE}/#kb=faq`);
    await page.getByRole("tab", { name: "WeChat" }).click();
    await page.locator("#wechat-facts").getByText("Not connected").waitFor();
    await page.getByRole("button", { name: "Generate EncodingAESKey" }).waitFor();
    await page.getByLabel(/^AppSecret \(optional\)/).waitFor();
    await shoot(page, "24-wechat-english");
    assert.deepEqual(unexpectedProblems(problems), [], "console errors in English");
  } finally {
    await close();
  }
  step("English");
}

async function main() {
  const { page, problems, close } = await keyedPage();
  try {
    await page.goto(`${BASE}/`);
    await page.getByText("还没有知识库，先创建一个。").waitFor();
    const secrets = await connect(page);
    await noSecretsAfterReload(page, secrets);
    await refusals(page, secrets);
    await keyboardAndPhone(page);
    await disconnect(page);
    // The refused settings are the only error responses the page should have caused.
    assert.deepEqual(unexpectedProblems(problems, [400]), [], "console errors");
  } catch (err) {
    await shoot(page, "wechat-failure").catch(() => {});
    console.error("problems seen by the browser:", problems);
    throw err;
  } finally {
    await close();
  }
  await english();
  console.log(`screenshots in ${shots}`);
}

await main();
