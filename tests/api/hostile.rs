//! Hostile input through the real upload path: every file of the malformed-input corpus
//! (fixtures/broken) fails alone with its code and a reason naming it, while a good file in the
//! same upload is served; file names cannot reach outside the data directory; request bodies
//! nested past any real request, or not UTF-8, are refused with a 400 on every front door.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::common::{TestServer, fixture};

/// What each file of fixtures/broken must fail with: the error code and a word of the reason.
/// A file added to the corpus needs a line here (the test refuses unknown files).
const EXPECTED: [(&str, &str, &str); 8] = [
    ("truncated.pdf", "invalid_request", "could not be read"),
    ("random.pdf", "invalid_request", "PDF"),
    ("scanned.pdf", "empty_file", "OCR"),
    ("empty.docx", "invalid_request", "Word"),
    ("zero.docx", "empty_file", "empty"),
    ("bomb.docx", "invalid_request", "zip bomb"),
    ("binary.txt", "unsupported_format", "binary"),
    ("script_only.html", "empty_file", "no text"),
];

#[tokio::test]
async fn every_broken_file_fails_alone_with_its_code_and_reason() {
    let dir = fixture("broken");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fixtures/broken")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect();
    let expected: BTreeMap<&str, (&str, &str)> = EXPECTED
        .iter()
        .map(|&(name, code, word)| (name, (code, word)))
        .collect();
    let mut names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        expected.keys().copied().collect::<Vec<_>>(),
        "every file of fixtures/broken has an expectation"
    );

    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    files.push((
        "ok.md".into(),
        "# 正常\n\n这个文件可以正常处理。".as_bytes().to_vec(),
    ));
    let (status, body) = server.upload("kb", files).await;
    assert_eq!(status, 202, "a mixed upload is accepted: {body}");
    let documents = server.wait_idle("kb").await;
    assert_eq!(documents.len(), expected.len() + 1, "{documents:?}");
    for document in &documents {
        let name = document["name"].as_str().unwrap();
        if name == "ok.md" {
            assert_eq!(document["status"], "ready", "{document}");
            continue;
        }
        let (code, word) = expected[name];
        assert_eq!(document["status"], "failed", "{document}");
        assert_eq!(document["error_code"], code, "{document}");
        let reason = document["error"].as_str().unwrap_or_default();
        assert!(
            reason.contains(name) && reason.contains(word),
            "{name}: the reason names the file and says why: {reason}"
        );
    }
    // The server keeps serving, and only the good file.
    let hits = server.search("kb", "正常处理", 5).await;
    assert!(!hits.is_empty());
    assert!(
        hits.iter().all(|h| h["document_name"] == "ok.md"),
        "{hits:?}"
    );
}

#[tokio::test]
async fn file_names_cannot_reach_outside_the_data_directory() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let hostile = [
        ("../../escape_a.md", "escape_a.md"),
        ("..\\..\\escape_b.md", "escape_b.md"),
        ("/etc/escape_c.md", "escape_c.md"),
        ("C:\\Windows\\escape_d.md", "escape_d.md"),
        ("sub/dir/escape_e.md", "escape_e.md"),
    ];
    let files = hostile
        .iter()
        .map(|(name, _)| {
            (
                (*name).to_owned(),
                "# 路径\n\n文件名不能逃出数据目录。".as_bytes().to_vec(),
            )
        })
        .collect();
    let (status, body) = server.upload("kb", files).await;
    assert_eq!(status, 202, "{body}");
    let documents = server.wait_idle("kb").await;
    let stored: Vec<&str> = documents
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for (sent, kept) in hostile {
        assert!(
            stored.contains(&kept),
            "{sent} is kept as {kept}: {stored:?}"
        );
    }
    assert_eq!(stored.len(), hostile.len(), "{stored:?}");
    // A NUL cannot even be sent in a part's header: the upload is refused as malformed.
    let (status, body) = server
        .upload("kb", vec![("escape_f.md\u{0}.sh".into(), b"# x".to_vec())])
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_request")),
        "{body}"
    );

    // Nothing was written anywhere but inside the data directory: its parent holds only it,
    // and no file inside it is named after an upload.
    let data_dir = server.data_dir();
    let parent = data_dir.parent().expect("parent");
    for entry in std::fs::read_dir(parent).expect("parent dir") {
        let name = entry.expect("entry").file_name();
        assert!(
            !name.to_string_lossy().contains("escape"),
            "{name:?} was written beside the data directory"
        );
    }
    assert!(
        !files_named_like(&data_dir, "escape"),
        "uploads are stored by id"
    );
    assert!(!Path::new("/etc/escape_c.md").exists());
}

fn files_named_like(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            let path = entry.path();
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(needle))
                || (path.is_dir() && files_named_like(&path, needle))
        })
}

#[tokio::test]
async fn deeply_nested_and_non_utf8_bodies_are_refused_on_every_door() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_in_field = format!(
        "{{\"query\": \"退款\", \"filter\": {}1{}}}",
        "{\"a\":".repeat(200),
        "}".repeat(200)
    );
    let not_utf8: Vec<u8> = b"{\"query\": \"\xff\xfe\xc0\"}".to_vec();
    let doors = [
        "/api/kbs/kb/search",
        "/api/kbs/kb/answer",
        "/v1/chat/completions",
        "/api/kbs",
    ];
    for door in doors {
        for body in [
            deep.as_bytes().to_vec(),
            deep_in_field.clone().into_bytes(),
            not_utf8.clone(),
        ] {
            let (status, reply) = server.post_raw(door, "application/json", body).await;
            assert_eq!(status, 400, "{door}: {reply}");
            assert_eq!(reply["error"]["code"], "invalid_json", "{door}: {reply}");
        }
    }
    // Dify speaks its own error shape, still a 4xx and never a crash.
    let (status, reply) = server
        .post_raw("/dify/retrieval", "application/json", deep.clone())
        .await;
    assert!((400..500).contains(&status), "{status} {reply}");
    // The server is unharmed.
    let (status, _) = server
        .post_json("/api/kbs/kb/search", &json!({ "query": "退款" }))
        .await;
    assert_eq!(status, 200);
}
