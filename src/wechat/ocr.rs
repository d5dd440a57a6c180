//! Image messages: download the picture WeChat points to and read its text with Tesseract
//! (Debian's `tesseract-ocr` with the `chi_sim` and `eng` languages).

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use crate::config::WeChatConfig;

/// How long one OCR run may take before it is abandoned.
const OCR_TIME_LIMIT: Duration = Duration::from_secs(20);

/// The text in the picture at `url`, one line, with the spaces Tesseract puts between Chinese
/// characters removed. Empty when the picture has no readable text.
pub async fn read_picture(
    http: &reqwest::Client,
    url: &str,
    config: &WeChatConfig,
) -> anyhow::Result<String> {
    let image = download(http, url, config.max_image_bytes).await?;
    let mut child = tokio::process::Command::new(&config.ocr_command)
        .args(["stdin", "stdout", "-l", &config.ocr_languages])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run {}: {e} (install tesseract-ocr)",
                config.ocr_command
            )
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin for OCR"))?;
    let feed = async move {
        stdin.write_all(&image).await?;
        stdin.shutdown().await
    };
    let (fed, output) = tokio::time::timeout(OCR_TIME_LIMIT, async {
        tokio::join!(feed, child.wait_with_output())
    })
    .await
    .map_err(|_| anyhow::anyhow!("OCR took longer than {OCR_TIME_LIMIT:?}"))?;
    fed?;
    let output = output?;
    if !output.status.success() {
        anyhow::bail!(
            "OCR failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(clean(&String::from_utf8_lossy(&output.stdout)))
}

async fn download(http: &reqwest::Client, url: &str, limit: usize) -> anyhow::Result<Vec<u8>> {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| anyhow::anyhow!("picture download failed: {e}"))?;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(piece) = stream.next().await {
        body.extend_from_slice(&piece?);
        if body.len() > limit {
            anyhow::bail!("the picture is larger than {limit} bytes");
        }
    }
    Ok(body)
}

/// Joins OCR lines into one question, dropping spaces between Chinese characters.
fn clean(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>();
    let mut out = String::new();
    for (i, word) in joined.iter().enumerate() {
        if i > 0 {
            let prev = out.chars().last().unwrap_or(' ');
            let next = word.chars().next().unwrap_or(' ');
            if !(is_wide(prev) || is_wide(next)) {
                out.push(' ');
            }
        }
        out.push_str(word);
    }
    out
}

/// Chinese characters and full-width punctuation, which take no spaces around them.
fn is_wide(c: char) -> bool {
    matches!(c, '\u{3000}'..='\u{303F}' | '\u{4E00}'..='\u{9FFF}' | '\u{FF00}'..='\u{FFEF}')
}

#[cfg(test)]
mod tests {
    #[test]
    fn ocr_text_becomes_one_line_without_spaces_inside_chinese() {
        assert_eq!(
            super::clean("退 货 政 策 是 什 么 ？\n\nHow to return goods\n7 天"),
            "退货政策是什么？How to return goods 7天"
        );
    }
}
