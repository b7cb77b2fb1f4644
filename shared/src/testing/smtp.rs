//! A real SMTP server for tests: it speaks enough of RFC 5321 (EHLO/HELO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT) for a real client to hand it mail, and records every message it accepts,
//! in order. A message is recorded before its `250` goes out, as a real server commits before
//! it answers.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as the server accepted it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA (headers and body), dot-stuffing undone.
    pub data: Vec<u8>,
}

impl Mail {
    /// A header's raw value (folded lines joined), as it stands in the message: still
    /// RFC 2047-encoded where the sender encoded it.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.data);
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = value.as_mut() {
                    v.push_str(line.trim_start());
                }
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_string());
            }
        }
        value
    }
}

pub struct SmtpReceiver {
    pub host: String,
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP receiver");
        let port = listener.local_addr().expect("addr").port();
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, kept.clone()));
            }
        });
        Self { host: "127.0.0.1".into(), port, mails }
    }

    /// Every message accepted so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("smtp lock").clone()
    }
}

/// The address inside `FROM:<a@b> PARAM=…` or `TO:<a@b>`.
fn path_of(argument: &str) -> String {
    let start = argument.find('<').map(|i| i + 1).unwrap_or(0);
    let end = argument[start..].find('>').map(|i| start + i).unwrap_or(argument.len());
    argument[start..end].to_string()
}

async fn session(stream: TcpStream, mails: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 skyledger-test ESMTP ready\r\n").await?;
    let (mut from, mut to) = (None::<String>, Vec::<String>::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end();
        let (verb, argument) = command.split_once(' ').unwrap_or((command, ""));
        let reply: &[u8] = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => b"250-skyledger-test greets you\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n",
            "HELO" => b"250 skyledger-test\r\n",
            "MAIL" => {
                from = Some(path_of(argument));
                to.clear();
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" if from.is_some() => {
                to.push(path_of(argument));
                b"250 2.1.5 OK\r\n"
            }
            "RCPT" => b"503 5.5.1 MAIL first\r\n",
            "DATA" if from.is_some() && !to.is_empty() => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    if lines.read_until(b'\n', &mut raw).await? == 0 {
                        return Ok(()); // The client went away mid-message: nothing accepted.
                    }
                    if raw == b".\r\n" || raw == b".\n" {
                        break;
                    }
                    let unstuffed = if raw.starts_with(b"..") { &raw[1..] } else { &raw[..] };
                    data.extend_from_slice(unstuffed);
                }
                let mail = Mail { from: from.take().unwrap_or_default(), to: std::mem::take(&mut to), data };
                mails.lock().expect("smtp lock").push(mail);
                b"250 2.0.0 OK queued\r\n"
            }
            "DATA" => b"503 5.5.1 MAIL and RCPT first\r\n",
            "RSET" => {
                from = None;
                to.clear();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognised\r\n",
        };
        write.write_all(reply).await?;
    }
}
