// The page against a lore that requires an API key ($LORE_URL, key $LORE_KEY): it says a key
// is needed and opens the key dialog; a wrong key is refused again; the right key is kept in
// localStorage, so a reload works without asking.

import assert from "node:assert/strict";
import path from "node:path";

import { openPage, screenshotDir, stepper, unexpectedProblems } from "./browser.mjs";

const BASE = process.env.LORE_URL;
const KEY = process.env.LORE_KEY;
assert.ok(BASE && KEY, "set LORE_URL and LORE_KEY (tests/api/web.rs does)");

const step = stepper();

async function enterKey(page, key) {
  const dialog = page.getByRole("dialog", { name: "API 密钥" });
  await dialog.waitFor();
  await dialog.getByLabel("密钥", { exact: true }).fill(key);
  await dialog.getByRole("button", { name: "保存" }).click();
}

async function main() {
  const { page, problems, close } = await openPage();
  try {
    await page.goto(`${BASE}/`);
    await page.getByRole("alert").filter({ hasText: "需要有效的 API 密钥" }).waitFor();
    await page.screenshot({ path: path.join(screenshotDir(), "10-api-key.png") });
    step("401 explained, key dialog open");

    await enterKey(page, "not-the-key");
    await page.getByRole("dialog", { name: "API 密钥" }).waitFor();
    await page.getByRole("alert").filter({ hasText: "需要有效的 API 密钥" }).waitFor();
    step("a wrong key is refused");

    await enterKey(page, KEY);
    await page.getByText("还没有知识库，先创建一个。").waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem("lore.apiKey")), KEY);
    await page.getByLabel("标识（小写字母、数字、- 或 _）").fill("secured");
    await page.getByRole("button", { name: "创建", exact: true }).click();
    await page.locator("#kb-title", { hasText: "secured" }).waitFor();
    step("the right key works");

    // The page knows the server's upload limit: it says it, and a file over it gets its own
    // message, naming the limit, without being sent.
    const limit = `${(Number(process.env.LORE_UPLOAD_LIMIT) / 1024).toFixed(1)} KB`;
    await page.locator("#upload-limit", { hasText: `每次上传不超过 ${limit}` }).waitFor();
    const uploadsSent = [];
    page.on("request", (r) => { if (r.method() === "POST" && r.url().includes("/documents")) uploadsSent.push(r.url()); });
    await page.setInputFiles("#file-input", {
      name: "big.md",
      mimeType: "text/markdown",
      buffer: Buffer.alloc(Number(process.env.LORE_UPLOAD_LIMIT) * 2, "大"),
    });
    await page.locator('.upload[data-name="big.md"][data-status="failed"]', { hasText: `文件太大：每次上传不能超过 ${limit}` }).waitFor();
    assert.deepEqual(uploadsSent, [], "a file over the limit is not sent");
    step("the upload limit shown, a file over it refused before sending");

    await page.reload();
    await page.locator("#kb-title", { hasText: "secured" }).waitFor();
    assert.equal(await page.getByRole("dialog").count(), 0, "no key dialog after a reload");
    step("the key is kept across reloads");

    // The refusals above are the only error responses the page should have caused.
    assert.deepEqual(unexpectedProblems(problems, [401, 413]), [], "console errors");
  } catch (err) {
    console.error("problems seen by the browser:", problems);
    throw err;
  } finally {
    await close();
  }
}

await main();
