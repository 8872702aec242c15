//! What one RTMP peer may cost before it has proved it is a publisher or a
//! player, and after.

crate::limits! {
    /// RTMP's limits, from the command line and the file.
    pub struct RtmpLimits, RawRtmpLimits, "RTMP limits" {
        /// Seconds a connection gets to finish the handshake and publish or play; then it is closed
        rtmp_start_timeout_s: u64 = 10, 1..=3600, "TINSEL_RTMP_START_TIMEOUT_S";
        /// Most RTMP connections open at once from one address (an IPv6 /64 counts as one), publishing, playing or neither
        rtmp_max_connections_per_ip: usize = 256, 1..=1_000_000, "TINSEL_RTMP_MAX_CONNECTIONS_PER_IP";
        /// Most RTMP connections not yet publishing or playing; a new one past this closes the oldest of the address that has the most
        rtmp_max_pending: usize = 512, 1..=1_000_000, "TINSEL_RTMP_MAX_PENDING";
        /// Largest chunk size a peer may set (bytes); OBS and FFmpeg set 4096
        rtmp_max_chunk_size: u32 = 1048576, 128..=16777215, "TINSEL_RTMP_MAX_CHUNK_SIZE";
        /// Largest audio or video message from a publisher (bytes); a 1080p60 keyframe at 6 Mbit/s is a few hundred KB
        rtmp_max_message_bytes: u32 = 8388608, 65536..=16777215, "TINSEL_RTMP_MAX_MESSAGE_BYTES";
        /// Largest command or data message, and largest message of any kind before a publish (bytes)
        rtmp_max_command_bytes: u32 = 65536, 4096..=16777215, "TINSEL_RTMP_MAX_COMMAND_BYTES";
        /// Chunk streams one connection may use at once; OBS and FFmpeg use about five
        rtmp_max_chunk_streams: usize = 64, 8..=65599, "TINSEL_RTMP_MAX_CHUNK_STREAMS";
        /// Bytes one connection may hold in unfinished messages, all its chunk streams together
        rtmp_max_buffered_bytes: usize = 16777216, 65536..=1073741824, "TINSEL_RTMP_MAX_BUFFERED_BYTES";
        /// Streams one connection may create (createStream); OBS and FFmpeg create one
        rtmp_max_streams: u32 = 16, 1..=1024, "TINSEL_RTMP_MAX_STREAMS";
        /// Longest publish or play name, that is stream key or stream name (bytes)
        rtmp_max_name_bytes: usize = 1024, 16..=65536, "TINSEL_RTMP_MAX_NAME_BYTES";
    }
}
