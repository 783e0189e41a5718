//! The SQS source against a real moto server: real S3 → SQS notifications, the other
//! notification shapes, poison messages, delete-on-delivery.

use std::path::Path;

use crate::common::moto::Moto;
use crate::common::*;

pub(crate) const BUCKET: &str = "org-trail";

pub(crate) async fn setup(m: &Moto) -> String {
    let s3 = m.s3();
    let sqs = m.sqs();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let q = sqs
        .create_queue()
        .queue_name("cloudtrail-objects")
        .send()
        .await
        .unwrap();
    let url = q.queue_url.unwrap();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attrs.attributes.unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let qc = aws_sdk_s3::types::QueueConfiguration::builder()
        .queue_arn(arn)
        .events(aws_sdk_s3::types::Event::S3ObjectCreated)
        .build()
        .unwrap();
    s3.put_bucket_notification_configuration()
        .bucket(BUCKET)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .queue_configurations(qc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    url
}

pub(crate) async fn put(m: &Moto, key: &str, body: Vec<u8>) {
    m.put_object(BUCKET, key, body).await;
}

async fn send(m: &Moto, url: &str, body: String) {
    m.sqs()
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

pub(crate) async fn messages_left(m: &Moto, url: &str) -> (i64, i64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let a = m
        .sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let n = |k: A| a.get(&k).and_then(|v| v.parse().ok()).unwrap_or(-1);
    (
        n(A::ApproximateNumberOfMessages),
        n(A::ApproximateNumberOfMessagesNotVisible),
    )
}

fn config(d: &Path, m: &Moto, url: &str) -> std::path::PathBuf {
    to_file(
        d,
        "queue",
        "sqs",
        keys! {
            "queue_url" => url,
            "endpoint" => m.endpoint.clone(),
            "region" => "us-east-1",
            "visibility_timeout" => 30,
            "concurrency" => 2,
        },
        keys! {},
    )
    .write()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_notification_shape_end_to_end_and_poison_stays_on_the_queue() {
    let m = Moto::start();
    let url = setup(&m).await;
    let d = tempfile::tempdir().unwrap();
    let inv = fixtures().join("invictus");
    let files = files_under(&inv);
    let key = |i: usize, name: &str| {
        format!("AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10/{i}_{name}")
    };
    // Announced by S3 itself (real notifications), including a key that needs URL-decoding.
    put(
        &m,
        &key(0, "plain.json.gz"),
        std::fs::read(&files[0]).unwrap(),
    )
    .await;
    put(
        &m,
        &key(1, "with space+plus.json.gz"),
        std::fs::read(&files[1]).unwrap(),
    )
    .await;
    // A digest is announced too, and skipped by key.
    put(
        &m,
        "AWSLogs/218007301253/CloudTrail-Digest/us-east-1/2023/07/10/d.json.gz",
        corpus::gzip(b"{\"digestStartTime\":\"x\"}"),
    )
    .await;
    // Objects announced by hand-written messages of the other shapes (uploaded first: their
    // own S3 notifications are consumed too, so each object is delivered twice — by design of
    // this test, counted below).
    let other = fixtures().join("stratus");
    let stratus = files_under(&other);
    let (k_sns, k_eb, k_ct1, k_ct2) = (
        "other/sns.json",
        "other/eventbridge.json",
        "other/ct1.json",
        "other/ct2.json",
    );
    for (k, f) in [
        (k_sns, &stratus[0]),
        (k_eb, &stratus[1]),
        (k_ct1, &stratus[2]),
        (k_ct2, &stratus[3]),
    ] {
        put(&m, k, std::fs::read(f).unwrap()).await;
    }
    let s3msg = |k: &str| {
        serde_json::json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": BUCKET}, "object": {"key": k}}}]}).to_string()
    };
    send(&m, &url, serde_json::json!({"Type": "Notification", "MessageId": "1", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": s3msg(k_sns)}).to_string()).await;
    send(&m, &url, serde_json::json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {"name": BUCKET}, "object": {"key": k_eb}}}).to_string()).await;
    send(
        &m,
        &url,
        serde_json::json!({"s3Bucket": BUCKET, "s3ObjectKey": [k_ct1, k_ct2]}).to_string(),
    )
    .await;
    // Poison: not JSON, an unknown shape, an object that does not exist, an object that is
    // not CloudTrail.
    put(&m, "other/not-cloudtrail.txt", b"hello, not json".to_vec()).await;
    send(&m, &url, "this is not json".into()).await;
    send(&m, &url, r#"{"hello":"world"}"#.into()).await;
    send(&m, &url, s3msg("other/missing.json.gz")).await;

    let cfg = config(d.path(), &m, &url);
    let o = m.run_once(&cfg);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(3),
        "poison messages are not delivered: exit 3\n{err}"
    );

    let per_file = |p: &Path| {
        sorted(
            fixture_records(p)
                .iter()
                .map(|(_, r)| event_id(r))
                .collect(),
        )
    };
    let mut want = Vec::new();
    want.extend(per_file(&files[0]));
    want.extend(per_file(&files[1]));
    for f in &stratus[..4] {
        // once from S3's own notification, once from the hand-written one
        want.extend(per_file(f));
        want.extend(per_file(f));
    }
    // A standard queue delivers at least once, and moto's ReceiveMessage is not atomic across
    // its threads: the two receivers may both get a message. Allow one message received
    // twice (the largest: the CloudTrail notification naming two objects), nothing lost.
    let largest = per_file(&files[0])
        .len()
        .max(per_file(&files[1]).len())
        .max(per_file(&stratus[2]).len() + per_file(&stratus[3]).len());
    let extra = assert_at_least_once(
        &output_ids(&d.path().join("out.ndjson")),
        &want,
        largest,
        &err,
    );
    println!(
        "measured: {} events expected, {extra} redelivered",
        want.len()
    );

    for reason in [
        "not_json",
        "unknown_shape",
        "object_missing",
        "not_cloudtrail",
    ] {
        assert!(
            logs(&o.stderr)
                .iter()
                .any(|l| l["reason"] == reason && l["message_id"].is_string()),
            "{reason} not logged\n{err}"
        );
    }
    // Everything delivered was deleted; the 4 poison messages are still on the queue (in flight
    // until their visibility timeout ends).
    let (visible, in_flight) = messages_left(&m, &url).await;
    assert_eq!((visible, in_flight), (0, 4), "{err}");
}

/// Upload `files` corpus objects to the notified bucket: one real notification each.
async fn corpus_on_queue(m: &Moto, files: usize, records: usize) -> (String, Vec<String>) {
    let url = setup(m).await;
    let d = tempfile::tempdir().unwrap();
    let (mut ids, _) = corpus::write_corpus(d.path(), files, records, 5);
    for f in files_under(d.path()) {
        let key = f
            .strip_prefix(d.path())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        put(m, &key, std::fs::read(&f).unwrap()).await;
    }
    ids.sort();
    (url, ids)
}

fn with_vt(cfg: &Path, vt: u32) {
    let text = std::fs::read_to_string(cfg).unwrap().replace(
        "visibility_timeout = 30",
        &format!("visibility_timeout = {vt}"),
    );
    std::fs::write(cfg, text).unwrap();
}

fn spawn(cfg: &Path, m: &Moto, once: bool, log: &Path) -> std::process::Child {
    let mut c = if once { once_cmd(cfg) } else { daemon_cmd(cfg) };
    m.apply(&mut c);
    c.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_share_one_queue_without_loss() {
    let m = Moto::start();
    let (url, ids) = corpus_on_queue(&m, 30, 300).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca, cb) = (config(a.path(), &m, &url), config(b.path(), &m, &url));
    let mut pa = spawn(&ca, &m, true, &a.path().join("log"));
    let mut pb = spawn(&cb, &m, true, &b.path().join("log"));
    assert_eq!(
        wait_exit(&mut pa, 120).code(),
        Some(0),
        "{}",
        std::fs::read_to_string(a.path().join("log")).unwrap()
    );
    assert_eq!(
        wait_exit(&mut pb, 120).code(),
        Some(0),
        "{}",
        std::fs::read_to_string(b.path().join("log")).unwrap()
    );
    let got_a = if a.path().join("out.ndjson").exists() {
        output_ids(&a.path().join("out.ndjson"))
    } else {
        vec![]
    };
    let got_b = if b.path().join("out.ndjson").exists() {
        output_ids(&b.path().join("out.ndjson"))
    } else {
        vec![]
    };
    println!(
        "measured: {} events over 30 messages; process A delivered {}, process B {}",
        ids.len(),
        got_a.len(),
        got_b.len()
    );
    let mut all = got_a.clone();
    all.extend(got_b.iter().cloned());
    // Standard queues deliver at least once (and moto's ReceiveMessage is not atomic across
    // threads): a message received by both processes is delivered twice. Nothing may be lost;
    // at most one receive batch (10 messages of 300) may come twice.
    let extra = assert_at_least_once(&all, &ids, 10 * 300, "across both processes");
    println!("measured: {extra} events delivered twice across the two processes");
    // Every message each process received was deleted, by its own account: none failed, and
    // together they deleted at least the 30 messages (more when moto handed one to both).
    let (del_a, fail_a) = deleted_and_failed(&a.path().join("log"));
    let (del_b, fail_b) = deleted_and_failed(&b.path().join("log"));
    println!("measured: messages deleted A {del_a}, B {del_b}; failed A {fail_a}, B {fail_b}");
    assert_eq!((fail_a, fail_b), (0, 0));
    assert!(
        del_a + del_b >= 30,
        "deleted {del_a} + {del_b} of 30 messages"
    );
    // The queue holds nothing visible. moto 5.2's DeleteMessage rebuilds the queue's message
    // list without a lock (moto/sqs/models.py, Queue.delete_message), so two deletes at the same
    // instant from the two processes can put back a message the other one deleted; it shows as
    // in flight. The counts above are what trailship did; one such message is moto's.
    let (visible, in_flight) = messages_left(&m, &url).await;
    println!("measured: left on the queue: {visible} visible, {in_flight} in flight");
    assert_eq!(visible, 0);
    assert!(in_flight <= 1, "{in_flight} messages still in flight");
}

/// `messages_deleted` and `messages_failed` from a process's "sqs source stopped" log line.
fn deleted_and_failed(log: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(log).unwrap();
    let line: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|l: &serde_json::Value| l["message"] == "sqs source stopped")
        .unwrap_or_else(|| panic!("no 'sqs source stopped' line in {}:\n{text}", log.display()));
    let field = |k: &str| {
        line[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    (field("messages_deleted"), field("messages_failed"))
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_then_restart_loses_nothing() {
    let m = Moto::start();
    let (url, ids) = corpus_on_queue(&m, 40, 500).await;
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &m, &url);
    with_vt(&cfg, 3);
    let out = d.path().join("out.ndjson");
    let mut p = spawn(&cfg, &m, false, &d.path().join("daemon.log"));
    let log = d.path().join("daemon.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::metadata(&out)
        .map(|x| x.len() > 0)
        .unwrap_or(false)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no events within 60 s:
{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    signal(&p, libc::SIGKILL);
    let _ = p.wait();
    // Messages in flight at the kill come back after their visibility timeout (3 s).
    for round in 0..10 {
        let o = m.run_once(&cfg);
        expect_code(&o, 0);
        if messages_left(&m, &url).await == (0, 0) {
            break;
        }
        assert!(round < 9, "queue never drained");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    let got = output_ids(&out);
    let mset = multiset(&got);
    assert!(
        ids.iter().all(|i| mset.contains_key(i)),
        "an event was lost"
    );
    assert_eq!(mset.len(), ids.len(), "nothing but the input");
    println!(
        "measured: {} events, {} delivered after kill -9 and restart, {} duplicates",
        ids.len(),
        got.len(),
        got.len() - ids.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn visibility_is_extended_while_a_slow_sink_holds_the_events() {
    let m = Moto::start();
    let (url, ids) = corpus_on_queue(&m, 3, 200).await;
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &m, &url);
    with_vt(&cfg, 2);
    // The sink cannot write for 6 s (three visibility timeouts): its directory is blocked.
    let blocker = d.path().join("out");
    std::fs::write(&blocker, b"x").unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("out.ndjson", "out/events.ndjson")
        .replace(
            "batch.timeout",
            "retry.initial_backoff = \"50ms\"\nretry.max_backoff = \"300ms\"\nbatch.timeout",
        );
    let port = free_port();
    std::fs::write(
        &cfg,
        format!("{text}\n[api]\naddress = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let log = d.path().join("daemon.log");
    let mut p = spawn(&cfg, &m, false, &log);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    // The three messages are held (received, not deleted) while the sink cannot write.
    let metrics = http(port, "GET", "/metrics").unwrap().1;
    assert!(
        metrics
            .lines()
            .any(|l| l == "trailship_sqs_messages_in_flight{component=\"queue\"} 3"),
        "{metrics}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    std::fs::remove_file(&blocker).unwrap();
    let out = d.path().join("out/events.ndjson");
    wait_until(60, "all events", || {
        out.exists() && complete_ids(&out).len() >= ids.len()
    });
    wait_until(30, "no message in flight once delivered", || {
        http(port, "GET", "/metrics").is_some_and(|(_, m)| {
            m.lines()
                .any(|l| l == "trailship_sqs_messages_in_flight{component=\"queue\"} 0")
        })
    });
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    signal(&p, libc::SIGTERM);
    assert_eq!(wait_exit(&mut p, 30).code(), Some(0));
    // Two receivers polled all along: none got a message again while its events were held.
    assert_eq!(
        output_ids(&out),
        ids,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(messages_left(&m, &url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_really_signed() {
    // moto checks SigV4 after its first 3 calls, which create the IAM user and its key.
    let mut m = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
    m.create_signing_user();
    let (url, ids) = corpus_on_queue(&m, 2, 50).await;
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &m, &url);
    // A wrong secret is refused: the run fails instead of waiting forever.
    let good = m.key.clone();
    m.key.1 = "not-the-secret".into();
    let o = m.run_once(&cfg);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("SignatureDoesNotMatch") || err.contains("403"),
        "{err}"
    );
    assert!(!d.path().join("out.ndjson").exists());
    // The right key works.
    m.key = good;
    let o = m.run_once(&cfg);
    expect_code(&o, 0);
    assert_eq!(output_ids(&d.path().join("out.ndjson")), ids);
    assert_eq!(messages_left(&m, &url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn real_s3_to_sns_to_sqs_notifications() {
    let m = Moto::start();
    // SNS has no client in trailship's dependencies: set the chain up with boto3 (installed
    // with moto).
    let script = format!(
        "import boto3\nkw = dict(endpoint_url='{ep}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\ns3 = boto3.client('s3', **kw); sns = boto3.client('sns', **kw); sqs = boto3.client('sqs', **kw)\ns3.create_bucket(Bucket='{BUCKET}')\nt = sns.create_topic(Name='trail')['TopicArn']\nq = sqs.create_queue(QueueName='via-sns')['QueueUrl']\narn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=['QueueArn'])['Attributes']['QueueArn']\nsns.subscribe(TopicArn=t, Protocol='sqs', Endpoint=arn)\ns3.put_bucket_notification_configuration(Bucket='{BUCKET}', NotificationConfiguration={{'TopicConfigurations': [{{'TopicArn': t, 'Events': ['s3:ObjectCreated:*']}}]}})\nprint(q)\n",
        ep = m.endpoint
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let files = files_under(&fixtures().join("invictus"));
    for (i, f) in files.iter().take(3).enumerate() {
        put(
            &m,
            &format!("AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10/sns_{i}.json.gz"),
            std::fs::read(f).unwrap(),
        )
        .await;
    }
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &m, &url);
    let o = m.run_once(&cfg);
    expect_code(&o, 0);
    let want = sorted(
        files
            .iter()
            .take(3)
            .flat_map(|f| fixture_records(f))
            .map(|(_, r)| event_id(&r))
            .collect(),
    );
    assert_eq!(output_ids(&d.path().join("out.ndjson")), want);
    assert_eq!(messages_left(&m, &url).await, (0, 0));
}
