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
        }
    }

    fn creds() -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests")
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let c = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::creds())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(c)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let c = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::creds())
            .build();
        aws_sdk_sqs::Client::from_conf(c)
    }

    /// The environment trailship runs with against this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
