//! A stand-in for a team's user service, the `[enrich]` endpoint: it
//! records what it is asked and answers as the test sets it to.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;

use super::serve;

/// How the user service answers next.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this JSON.
    Json(serde_json::Value),
    /// This status, empty body.
    Status(u16),
    /// 200 with this body, as is.
    Raw(&'static str),
    /// 200 `{}` after this long.
    Slow(Duration),
}

#[derive(Clone)]
pub struct UserService {
    pub addr: SocketAddr,
    /// Every JSON body received, in order.
    pub asked: Arc<Mutex<Vec<serde_json::Value>>>,
    answer: Arc<Mutex<Answer>>,
}

impl UserService {
    /// Answers `answer` from now on.
    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// The last request body.
    pub fn last(&self) -> serde_json::Value {
        self.asked.lock().unwrap().last().cloned().unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://{}/minigate/enrich", self.addr)
    }
}

pub async fn user_service(answer: Answer) -> UserService {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(Mutex::new(answer));
    let (seen, current) = (asked.clone(), answer.clone());
    let addr = serve(move |req: Request<Incoming>| {
        let (seen, current) = (seen.clone(), current.clone());
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
            let answer = current.lock().unwrap().clone();
            let (status, body) = match answer {
                Answer::Json(v) => (200, Bytes::from(v.to_string())),
                Answer::Status(s) => (s, Bytes::new()),
                Answer::Raw(s) => (200, Bytes::from_static(s.as_bytes())),
                Answer::Slow(d) => {
                    tokio::time::sleep(d).await;
                    (200, Bytes::from_static(b"{}"))
                }
            };
            let mut res = Response::new(Full::new(body));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            res.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            res
        }
    })
    .await;
    UserService {
        addr,
        asked,
        answer,
    }
}
