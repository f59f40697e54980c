//! A real DNS server on a loopback UDP port serving fixed answers, so DNS tests never leave
//! the machine. It speaks the wire protocol (hickory's message codec) and counts the queries it
//! gets per name, so tests can see what was looked up and what came from the cache.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    str::FromStr,
    sync::{Arc, Mutex},
};

use hickory_resolver::proto::{
    op::{Message, MessageType, OpCode, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{MX, TXT},
    },
};
use tokio::net::UdpSocket;

/// How the server answers for one domain.
#[derive(Clone, Debug)]
pub enum Zone {
    /// MX records: (preference, exchange); "." is the root (a null MX).
    Mx(Vec<(u16, &'static str)>),
    /// No MX, an A record.
    AOnly(Ipv4Addr),
    /// TXT records, each one value (split into strings of 255 bytes, as DNS stores long ones).
    Txt(Vec<String>),
    /// The name exists with no MX and no address.
    Empty,
    /// NXDOMAIN.
    Missing,
    /// SERVFAIL.
    Broken,
    /// Never answers (the lookup times out).
    Silent,
}

/// The running server.
pub struct FixtureDns {
    pub address: SocketAddr,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FixtureDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FixtureDns {
    /// Serves `zones` (domain → answer, names without the trailing dot); any other name is
    /// NXDOMAIN.
    pub async fn start(zones: &[(&str, Zone)]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let zones: HashMap<String, Zone> = zones
            .iter()
            .map(|(name, zone)| (format!("{name}."), zone.clone()))
            .collect();
        let queries = Arc::new(Mutex::new(HashMap::new()));
        let counts = queries.clone();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buffer).await else {
                    return;
                };
                let Ok(request) = Message::from_vec(&buffer[..len]) else {
                    continue;
                };
                let Some(query) = request.queries.first().cloned() else {
                    continue;
                };
                let name = query.name().to_ascii().to_lowercase();
                *counts
                    .lock()
                    .unwrap()
                    .entry(name.trim_end_matches('.').to_owned())
                    .or_insert(0) += 1;
                let zone = zones.get(&name).cloned().unwrap_or(Zone::Missing);
                let Some(response) = answer(&request, &zone, query.query_type()) else {
                    continue;
                };
                let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
            }
        });
        Self {
            address,
            queries,
            task,
        }
    }

    /// How many queries (any type) arrived for `domain`.
    pub fn queries_for(&self, domain: &str) -> usize {
        self.queries
            .lock()
            .unwrap()
            .get(domain)
            .copied()
            .unwrap_or(0)
    }
}

fn answer(request: &Message, zone: &Zone, asked: RecordType) -> Option<Message> {
    let id = request.metadata.id;
    let mut response = Message::new(id, MessageType::Response, OpCode::Query);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.queries = request.queries.clone();
    let query = request.queries.first()?;
    let name = query.name().clone();
    match zone {
        Zone::Silent => return None,
        Zone::Broken => response.metadata.response_code = ResponseCode::ServFail,
        Zone::Missing => response.metadata.response_code = ResponseCode::NXDomain,
        Zone::Empty => {}
        Zone::Mx(hosts) if asked == RecordType::MX => {
            for (preference, exchange) in hosts {
                let exchange = if *exchange == "." {
                    Name::root()
                } else {
                    Name::from_str(&format!("{exchange}.")).unwrap()
                };
                let mx = RData::MX(MX::new(*preference, exchange));
                response
                    .answers
                    .push(Record::from_rdata(name.clone(), 300, mx));
            }
        }
        Zone::AOnly(ip) if asked == RecordType::A => {
            let a = RData::A((*ip).into());
            response.answers.push(Record::from_rdata(name, 300, a));
        }
        Zone::Txt(values) if asked == RecordType::TXT => {
            for value in values {
                let strings = value
                    .as_bytes()
                    .chunks(255)
                    .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                    .collect();
                let txt = RData::TXT(TXT::new(strings));
                response
                    .answers
                    .push(Record::from_rdata(name.clone(), 300, txt));
            }
        }
        Zone::Mx(_) | Zone::AOnly(_) | Zone::Txt(_) => {}
    }
    Some(response)
}
