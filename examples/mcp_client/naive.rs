//! `--naive`: the seed bug, kept for comparison. Do not copy this file.
//!
//! In naive mode the memo's deletes ignore the epoch (`cache.delete(key)`, see `cache.rs`), the
//! memo has no removal listener (the seed's had none: a delete closed nothing), and
//! `clear_server_cache` is the seed's, translated line by line:
//!
//! ```text
//! const wrappedClient = await connectToServer(name, serverRef)  // [1] get from cache
//! await wrappedClient.cleanup()  // [2] close transport -> onclose -> reconnect [3]
//! connectToServer.cache.delete(key)  // [4] deletes the NEW entry from [3]
//! ```

use crate::client::McpClient;

pub async fn clear_server_cache(client: &McpClient, name: &str) -> bool {
    let Ok(key) = client.key(name) else {
        return false;
    };
    // [1] "get from cache", which connects if nothing is cached.
    if let Ok(connection) = client.connection(name).await {
        // [2] Close, and wait: the close handler runs, and the application reconnects [3].
        connection.close();
        connection.wait_closed().await;
    }
    // [4] Delete whatever is under the key *now*: the connection stored in [3]. Nothing closes
    //     it (a listener would, and hide the bug): its process runs on, unreachable by the memo.
    client.connections().remove(&key).is_some()
}
