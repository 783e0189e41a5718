//! A real moto server (S3, SQS, SNS, IAM, CloudWatch Logs, EventBridge) on a free loopback
//! port, one per test, killed on drop. Tests fail, not skip, when moto is missing:
//! `scripts/test.sh` installs it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub endpoint: String,
    /// The access key the test clients and trailship use (moto accepts anything unless it was
    /// started to check signatures).
    pub key: (String, String),
}

pub const REGION: &str = "us-east-1";

impl Moto {
    pub fn start() -> Moto {
        Self::start_with(&[])
    }

    /// `envs`: e.g. `INITIAL_NO_AUTH_ACTION_COUNT` to make moto check signatures.
    pub fn start_with(envs: &[(&str, &str)]) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("moto_server is required for the AWS tests: run scripts/test.sh (pip install 'moto[server]')");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            key: ("test".into(), "test".into()),
        }
    }

    fn creds(&self) -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new(&self.key.0, &self.key.1, None, None, "tests")
    }

    /// With moto checking signatures: create an IAM user allowed everything and use its key
    /// (through boto3, which the moto install brings). Must be among the first calls.
    pub fn create_signing_user(&mut self) {
        let script = format!(
            "import boto3, json\niam = boto3.client('iam', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')\niam.create_user(UserName='trailship')\nk = iam.create_access_key(UserName='trailship')['AccessKey']\niam.put_user_policy(UserName='trailship', PolicyName='all', PolicyDocument=json.dumps({{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}}]}}))\nprint(k['AccessKeyId'], k['SecretAccessKey'])\n",
            self.endpoint
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .expect("python3 with boto3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut it = text.split_whitespace();
        self.key = (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        );
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let c = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(self.creds())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(c)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let c = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(self.creds())
            .build();
        aws_sdk_sqs::Client::from_conf(c)
    }

    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        let c = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatchlogs::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(self.creds())
            .build();
        aws_sdk_cloudwatchlogs::Client::from_conf(c)
    }

    pub fn events(&self) -> aws_sdk_eventbridge::Client {
        let c = aws_sdk_eventbridge::Config::builder()
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .region(aws_sdk_eventbridge::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(self.creds())
            .build();
        aws_sdk_eventbridge::Client::from_conf(c)
    }

    /// Every log event in every group and stream: (group, stream, message).
    pub async fn all_log_events(&self) -> Vec<(String, String, String)> {
        let logs = self.logs();
        let mut out = Vec::new();
        let groups = logs.describe_log_groups().send().await.unwrap();
        for g in groups.log_groups.unwrap_or_default() {
            let group = g.log_group_name.unwrap();
            let streams = logs
                .describe_log_streams()
                .log_group_name(&group)
                .send()
                .await
                .unwrap();
            for s in streams.log_streams.unwrap_or_default() {
                let stream = s.log_stream_name.unwrap();
                let mut token: Option<String> = None;
                loop {
                    let page = logs
                        .get_log_events()
                        .log_group_name(&group)
                        .log_stream_name(&stream)
                        .start_from_head(true)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .unwrap();
                    let events = page.events.unwrap_or_default();
                    let empty = events.is_empty();
                    for e in events {
                        out.push((group.clone(), stream.clone(), e.message.unwrap_or_default()));
                    }
                    if empty || page.next_forward_token == token {
                        break;
                    }
                    token = page.next_forward_token;
                }
            }
        }
        out
    }

    pub async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.s3()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }

    /// The environment trailship runs with against this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key.0.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.key.1.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Moto {
    /// Point a trailship command at this server.
    pub fn apply(&self, cmd: &mut Command) {
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
    }

    /// `trailship run --once` against this server, to completion.
    pub fn run_once(&self, cfg: &std::path::Path) -> std::process::Output {
        let mut c = super::once_cmd(cfg);
        self.apply(&mut c);
        super::run_with_timeout(c, 120)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
