//! Every format users upload, through the real upload path: ready documents whose chunks carry
//! the known strings (broken files: hostile.rs).

use serde_json::Value;

use crate::common::{TestServer, fixture};

async fn chunks_of(server: &TestServer, kb: &str, document: &Value) -> Vec<String> {
    server
        .chunk_texts(kb, document["id"].as_str().unwrap())
        .await
}

#[tokio::test]
async fn pdf_docx_html_and_gb18030_text_ingest_and_are_searchable() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let files = [
        "docs/java_dev_manual_huangshan_zh.pdf",
        "docs/npp_periodic_safety_review_part1_general_zh.docx",
        "docs/wikipedia_mozilla_en.html",
        "docs/cmrc_dev_first30_gb18030.txt",
        "docs/ca-warn-report.pdf",
    ]
    .map(fixture);
    let (status, body) = server.upload_paths("kb", &files).await;
    assert_eq!(status, 202, "{body}");
    let documents = server.wait_idle("kb").await;
    for document in &documents {
        assert_eq!(document["status"], "ready", "{document}");
        assert!(document["chunk_count"].as_u64().unwrap() > 0);
    }
    let by_name = |name: &str| {
        documents
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()
            .clone()
    };

    let pdf = chunks_of(&server, "kb", &by_name("java_dev_manual_huangshan_zh.pdf")).await;
    assert!(
        pdf.iter()
            .any(|c| c.contains("【强制】所有编程相关的命名均不能以下划线或美元符号开始"))
    );
    let docx = chunks_of(
        &server,
        "kb",
        &by_name("npp_periodic_safety_review_part1_general_zh.docx"),
    )
    .await;
    assert!(docx.iter().any(|c| c.contains("核电厂定期安全评价")));
    let html = chunks_of(&server, "kb", &by_name("wikipedia_mozilla_en.html")).await;
    assert!(
        html.iter()
            .all(|c| !c.contains("Jump to navigation") && !c.contains("Main page"))
    );
    let table = chunks_of(&server, "kb", &by_name("ca-warn-report.pdf")).await;
    // Every chunk holding table rows starts its table part with a header row and separator.
    let with_rows: Vec<&String> = table
        .iter()
        .filter(|c| c.lines().any(|l| l.starts_with('|')))
        .collect();
    assert!(with_rows.len() > 3, "a 16-page table spans several chunks");
    for chunk in with_rows {
        let lines: Vec<&str> = chunk
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take(2)
            .collect();
        assert!(
            lines.len() == 2 && lines[1].starts_with("| ---"),
            "a table chunk without its header: {chunk}"
        );
    }

    let hits = server.search("kb", "命名能不能以下划线开始", 3).await;
    assert_eq!(
        hits[0]["document_name"], "java_dev_manual_huangshan_zh.pdf",
        "{hits:?}"
    );
}
