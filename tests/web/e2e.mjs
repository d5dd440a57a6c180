// The web page end to end, in headless Chromium, against a real lore at $LORE_URL (started by
// tests/api/web.rs, with a scripted chat model that answers LORE_EXPECTED_ANSWER).
//
// Creates a knowledge base, uploads a Chinese PDF (file picker) and a Markdown file (drag and
// drop), watches both become ready, uploads an unsupported file and sees why it failed, runs hit
// tests, asks questions (answer with a citation, not found), deletes a document and a knowledge
// base, and looks at the page at phone width and in English. Screenshots go to screenshotDir().

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { openPage, screenshotDir, stepper, unexpectedProblems } from "./browser.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));

const BASE = process.env.LORE_URL;
const ANSWER = process.env.LORE_EXPECTED_ANSWER;
assert.ok(BASE && ANSWER, "set LORE_URL and LORE_EXPECTED_ANSWER (tests/api/web.rs does)");

const REPO = path.resolve(HERE, "../..");
const PDF = path.join(REPO, "fixtures/docs/java_dev_manual_huangshan_zh.pdf");
const MARKDOWN = path.join(REPO, "../shared/eval/docs/md_zh/selfhost__deploy__quick-start__docker-compose.md");
const PDF_NAME = path.basename(PDF);
const MD_NAME = path.basename(MARKDOWN);

/** Ingesting the 55-page PDF takes ~50 s on two busy cores; leave room for a slower machine. */
const INGEST_TIMEOUT = 300_000;

const shots = screenshotDir();
const step = stepper();

async function shoot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

const docRow = (page, name) => page.locator("#docs-body tr").filter({ has: page.locator("th", { hasText: name }) });
const uploadRow = (page, name) => page.locator(`.upload[data-name="${name}"]`);

async function createKb(page, id, name) {
  // The form is folded away once a knowledge base exists.
  const form = page.locator("#kb-new");
  if (!(await form.evaluate((details) => details.open))) await form.locator("summary").click();
  await page.getByLabel("标识（小写字母、数字、- 或 _）").fill(id);
  await page.getByLabel("名称（可选）").fill(name);
  await page.getByRole("button", { name: "创建", exact: true }).click();
  await page.locator("#kb-title", { hasText: name }).waitFor();
}

/** Drops Markdown files ({name, text}) on the drop zone as if dragged from the desktop. */
async function dropFiles(page, files) {
  const dataTransfer = await page.evaluateHandle((files) => {
    const transfer = new DataTransfer();
    for (const { name, text } of files) transfer.items.add(new File([text], name, { type: "text/markdown" }));
    return transfer;
  }, files);
  await page.dispatchEvent("#dropzone", "dragover", { dataTransfer });
  await page.dispatchEvent("#dropzone", "drop", { dataTransfer });
}

async function uploadAndWatch(page) {
  await page.setInputFiles("#file-input", PDF);
  await dropFiles(page, [{ name: MD_NAME, text: fs.readFileSync(MARKDOWN, "utf8") }]);
  await uploadRow(page, PDF_NAME).waitFor();
  await uploadRow(page, MD_NAME).waitFor();
  step("uploads sent");

  // While the PDF is embedded, its row shows chunks done of total with a progress bar.
  await docRow(page, PDF_NAME).locator("progress").waitFor({ timeout: INGEST_TIMEOUT });
  await page.locator(`.upload[data-name="${PDF_NAME}"] .upload-status`, { hasText: /处理中 \d+\/\d+/ }).waitFor();
  await shoot(page, "02-processing");
  step("PDF processing, progress shown");

  for (const name of [MD_NAME, PDF_NAME]) {
    await page.locator(`#docs-body tr[data-status="ready"]`, { hasText: name }).waitFor({ timeout: INGEST_TIMEOUT });
    await page.locator(`.upload[data-name="${name}"][data-status="ready"]`, { hasText: "就绪" }).waitFor();
  }
  const pdfCells = await docRow(page, PDF_NAME).locator("td").allTextContents();
  assert.match(pdfCells[0], /MB/, `size column: ${pdfCells}`);
  assert.ok(Number(pdfCells[1]) > 10, `chunk count column: ${pdfCells}`);
  await shoot(page, "03-ready");

  // A document's chunks, one per list item, as many as the table says.
  const chunkCount = Number((await docRow(page, MD_NAME).locator("td").allTextContents())[1]);
  await page.getByRole("button", { name: `查看片段 ${MD_NAME}` }).click();
  const chunks = page.locator("#chunk-dialog[open] .chunk");
  await chunks.first().waitFor();
  assert.equal(await chunks.count(), chunkCount);
  await page.keyboard.press("Escape");
  step("both documents ready");
}

async function failingUpload(page) {
  await page.setInputFiles("#file-input", {
    name: "setup.xyz",
    mimeType: "application/octet-stream",
    buffer: Buffer.from("not a document lore can read"),
  });
  const row = page.locator('.upload[data-name="setup.xyz"][data-status="failed"]');
  await row.waitFor();
  const text = await row.textContent();
  assert.match(text, /不支持的文件类型/, text);
  assert.match(text, /xyz/, text);
  // The refused file is listed too, failed with its reason, until deleted or replaced.
  await page.locator('#docs-body tr[data-status="failed"]', { hasText: "setup.xyz" }).locator(".reason", { hasText: "xyz" }).waitFor();
  await shoot(page, "04-failed-upload");
  step("unsupported upload shows its reason");
}

/** Sets a range input as dragging its thumb would (Playwright cannot `fill` a range). */
async function setRange(page, label, value) {
  await page.getByLabel(label).evaluate((input, v) => {
    input.value = v;
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }, String(value));
}

async function hitTest(page, query, expectedDocument) {
  await page.getByLabel("查询").fill(query);
  await page.getByRole("button", { name: "测试", exact: true }).click();
  const first = page.locator("#search-results .result").first();
  await first.waitFor();
  const documents = await page.locator("#search-results .result").evaluateAll((items) => items.map((i) => i.dataset.document));
  assert.equal(documents[0], expectedDocument, `hit test "${query}" ranked: ${documents}`);
  assert.ok((await first.locator("mark").count()) > 0, "query terms are highlighted");
  const width = await first.locator(".bar .fill").evaluate((bar) => bar.style.width);
  assert.match(width, /^\d+%$/, "score bar width");
}

async function hitTesting(page) {
  await page.getByRole("tab", { name: "命中测试" }).click();
  await page.getByLabel("返回条数 (top_k)").fill("3");
  await hitTest(page, "POJO 类中布尔类型的变量为什么不要加 is 前缀", PDF_NAME);
  await hitTest(page, "Docker Compose 部署 Dify 最低硬件配置 CPU 内存", MD_NAME);
  assert.ok((await page.locator("#search-results .result").count()) <= 3, "top_k is honoured");
  // A threshold above every score leaves nothing.
  await setRange(page, "分数阈值", 1);
  await page.getByRole("button", { name: "测试", exact: true }).click();
  await page.locator("#search-status", { hasText: "没有达到阈值的结果" }).waitFor();
  await setRange(page, "分数阈值", 0);
  await page.getByRole("button", { name: "测试", exact: true }).click();
  await page.locator("#search-results .result").first().waitFor();
  await shoot(page, "05-hit-test");
  step("hit tests found the expected documents");
}

async function asking(page) {
  await page.getByRole("tab", { name: "问答" }).click();
  await page.getByLabel("问题").fill("使用 Docker Compose 部署 Dify，机器最低需要什么硬件配置？");
  const answered = page.waitForResponse((r) => r.url().endsWith("/answer"));
  await page.getByRole("button", { name: "提问", exact: true }).click();
  const response = await answered;
  assert.equal(response.request().postDataJSON().stream, true, "the page asks for a stream");
  assert.match(response.headers()["content-type"], /text\/event-stream/);
  await page.locator('#ask-result[data-verdict="answer"] #ask-meta', { hasText: "模型" }).waitFor();
  assert.equal(await page.locator("#ask-verdict").textContent(), "回答");
  assert.equal(await page.locator("#ask-answer").textContent(), ANSWER);
  const citation = page.locator("#ask-citations button").first();
  assert.match(await citation.textContent(), new RegExp(MD_NAME.replace(/\./g, "\\.")));

  await shoot(page, "06-answer");

  // The [1] in the answer opens the cited chunk.
  await page.locator("#ask-answer button.cite-ref").first().click();
  const dialog = page.locator("#chunk-dialog[open]");
  await dialog.waitFor();
  assert.match(await dialog.locator(".chunk-text").textContent(), /CPU >= 2/);
  await shoot(page, "07-citation");
  await page.keyboard.press("Escape");
  await page.locator("#chunk-dialog[open]").waitFor({ state: "detached" });
  step("answer streamed with its verdict and citation");

  await page.getByLabel("问题").fill("火星上明天的天气怎么样？");
  await page.getByRole("button", { name: "提问", exact: true }).click();
  await page.locator('#ask-result[data-verdict="not_found"]').waitFor();
  assert.equal(await page.locator("#ask-verdict").textContent(), "未找到");
  step("unanswerable question: not found");
}

/** Replace: the chosen file goes up under the document's name and is ingested again. */
async function replaceDocument(page) {
  await page.getByRole("tab", { name: "文档" }).click();
  const before = await docRow(page, MD_NAME).locator("time").getAttribute("datetime");
  const chooser = page.waitForEvent("filechooser");
  await page.getByRole("button", { name: `替换 ${MD_NAME}` }).click();
  const text = `${fs.readFileSync(MARKDOWN, "utf8")}\n\n## 更新说明\n\n本页已于今日更新。\n`;
  await (await chooser).setFiles({ name: "new-version.md", mimeType: "text/markdown", buffer: Buffer.from(text) });
  await page.locator(`.upload[data-name="${MD_NAME}"][data-status="ready"]`).nth(1).waitFor({ timeout: INGEST_TIMEOUT });
  const row = page.locator('#docs-body tr[data-status="ready"]', { hasText: MD_NAME });
  await row.waitFor();
  assert.notEqual(await row.locator("time").getAttribute("datetime"), before, "updated time moves");
  assert.equal(await page.locator("#docs-body tr", { hasText: "new-version.md" }).count(), 0, "replaced, not added");
  step("document replaced");
}

async function deleteDocument(page) {
  await page.getByRole("tab", { name: "文档" }).click();
  page.once("dialog", (dialog) => dialog.accept());
  await page.getByRole("button", { name: `删除 ${MD_NAME}` }).click();
  await docRow(page, MD_NAME).waitFor({ state: "detached" });
  assert.equal(await docRow(page, PDF_NAME).count(), 1);
  step("document deleted");
}

async function keyboardTabs(page) {
  await page.getByRole("tab", { name: "文档" }).focus();
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.getByRole("tab", { name: "命中测试" }).getAttribute("aria-selected"), "true");
  assert.ok(await page.locator("#panel-search").isVisible());
  await page.keyboard.press("Home");
}

async function phoneWidth(page) {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("tab", { name: "文档" }).click();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at phone width`);
  await shoot(page, "09-phone-documents");
  await page.getByRole("tab", { name: "命中测试" }).click();
  await shoot(page, "10-phone-hit-test");
  await page.setViewportSize({ width: 1280, height: 900 });
  step("phone width");
}

/** Near-tied documents that disagree: the page offers the options; picking one answers. */
async function clarification(page) {
  await createKb(page, "scratch", "临时知识库");
  await dropFiles(page, [
    { name: "cloud__members.md", text: "# 管理团队成员\n\n## 转让所有权\n\n工作空间所有者可以将所有权转让给其他成员，需要通过邮箱验证码确认。" },
    { name: "selfhost__members.md", text: "# 管理团队成员\n\n## 转让所有权\n\n自托管版本中，无法将工作空间所有权转让给其他成员。" },
    // A third, unrelated document: keyword weights depend on the whole knowledge base.
    { name: "refund.md", text: "# 售后政策\n\n商品签收之日起七日内，如对商品不满意，可申请无理由退货。退款在审核通过后三个工作日内原路返回。" },
  ]);
  await page.locator('#docs-body tr[data-status="ready"]').nth(2).waitFor({ timeout: INGEST_TIMEOUT });
  await page.getByRole("tab", { name: "问答" }).click();
  await page.getByLabel("问题").fill("工作空间的所有权可以转让吗？");
  await page.getByRole("button", { name: "提问", exact: true }).click();
  await page.locator('#ask-result[data-verdict="clarify"]').waitFor();
  assert.equal(await page.locator("#ask-verdict").textContent(), "需要澄清");
  const options = page.locator("#ask-options button");
  assert.equal(await options.count(), 2);
  await shoot(page, "08-clarify");
  const label = await options.filter({ hasText: "selfhost" }).textContent();
  await options.filter({ hasText: "selfhost" }).click();
  await page.locator('#ask-result[data-verdict="answer"] #ask-meta', { hasText: label }).waitFor();
  assert.match(await page.locator("#ask-citations").textContent(), /selfhost__members\.md/);
  assert.doesNotMatch(await page.locator("#ask-citations").textContent(), /cloud__members\.md/);
  step("clarification options narrow the answer to one document");
}

async function deleteKb(page) {
  page.once("dialog", (dialog) => {
    assert.match(dialog.message(), /临时知识库/);
    dialog.accept();
  });
  await page.getByRole("button", { name: "删除知识库" }).click();
  await page.locator("#kb-list", { hasText: "临时知识库" }).waitFor({ state: "detached" });
  assert.equal(await page.locator("#kb-list .kb").count(), 1);
  step("knowledge base deleted after confirmation");
}

async function english() {
  const { page, problems, close } = await openPage({ locale: "en-US" });
  try {
    await page.goto(`${BASE}/`);
    await page.getByRole("heading", { name: "lore Knowledge bases" }).waitFor();
    await page.getByRole("tab", { name: "Hit testing" }).waitFor();
    assert.equal(await page.locator("html").getAttribute("lang"), "en");
    await shoot(page, "12-english");
    assert.deepEqual(unexpectedProblems(problems), [], "console errors in English");
  } finally {
    await close();
  }
  step("English when the browser prefers it");
}

async function main() {
  const { page, problems, close } = await openPage();
  try {
    await page.goto(`${BASE}/`);
    await page.getByRole("heading", { name: "lore 知识库管理" }).waitFor();
    await shoot(page, "01-empty");
    await createKb(page, "faq", "客服知识库");
    step("knowledge base created");
    await uploadAndWatch(page);
    await failingUpload(page);
    await hitTesting(page);
    await asking(page);
    await replaceDocument(page);
    await deleteDocument(page);
    await keyboardTabs(page);
    await phoneWidth(page);
    await clarification(page);
    await deleteKb(page);
    // The unsupported upload's 415 is the only error response the page should have caused.
    assert.deepEqual(unexpectedProblems(problems, [415]), [], "console errors");
  } catch (err) {
    await shoot(page, "failure").catch(() => {});
    console.error("problems seen by the browser:", problems);
    throw err;
  } finally {
    await close();
  }
  await english();
  console.log(`screenshots in ${shots}`);
}

await main();
