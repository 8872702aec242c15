//! AAC to Opus, once per stream (pure): browsers do not play AAC over WebRTC, so
//! the AAC that the publisher sends is decoded, brought to 48 kHz and encoded as
//! 20 ms Opus packets that every viewer's RTP sender shares.
//!
//! Timestamps come from the input's decode times: a run of continuous input is
//! counted sample by sample from the dts of its first frame, so the rounding of
//! FLV's millisecond timestamps never makes the Opus clock drift. A hole of up
//! to [`MAX_HOLE_MS`] (a corrupt frame, a frame dropped upstream) is filled with
//! silence; a bigger jump either way starts a new run at the new dts.
//!
//! The publisher's AAC is untrusted, and symphonia's AAC decoder is known to
//! panic on crafted frames (its issues #424 and #512). Each frame therefore
//! goes through [`contain`]: a panic costs that frame, the decoder is built
//! anew from the config, and the next frame starts a new run.

use bytes::Bytes;
use opus::{Application, Bitrate, Channels};
use rubato::audioadapter_buffers::direct::{InterleavedSlice, SequentialSliceOfSlices};
use rubato::{Fft, FixedSync, Resampler};
use symphonia_codec_aac::AacDecoder;
use symphonia_core::audio::{AudioBuffer, Signal};
use symphonia_core::codecs::{CODEC_TYPE_AAC, CodecParameters, Decoder, DecoderOptions};
use symphonia_core::formats::Packet;

use crate::supervisor::contain;

/// Samples per channel in an AAC frame. AAC-LC also allows 960, which no
/// streaming encoder uses, so the config check refuses it.
const AAC_FRAME: usize = 1024;
/// Opus's sample rate, and the RTP clock rate of `opus/48000/2` (RFC 7587, 4.1).
const OPUS_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms Opus packet at 48 kHz.
const OPUS_FRAME: usize = 960;
/// RFC 6716, 3.2.1: no Opus frame is longer than this.
const MAX_OPUS_PACKET: usize = 1275;
/// How far a frame's dts may stray from where the current run expects it before
/// the run is abandoned for a new one. Smaller holes are filled with silence.
pub const MAX_HOLE_MS: u64 = 100;
/// Decoded (core) sample rates the transcoder takes. 24 and 22.05 kHz are the
/// AAC-LC core of HE-AAC at 48 and 44.1 kHz.
const SUPPORTED_RATES: [u32; 4] = [48_000, 44_100, 24_000, 22_050];

/// Sampling frequencies by index (ISO 14496-3, Table 1.18).
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// AudioObjectType values (ISO 14496-3, Table 1.17) that the config check names.
const OBJECT_AAC_LC: u8 = 2;
const OBJECT_SBR: u8 = 5;
const OBJECT_PS: u8 = 29;

/// What can go wrong turning AAC into Opus.
#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    #[error("the AAC sequence header ({len} bytes) is cut short; restart the publisher")]
    ConfigTruncated { len: usize },
    #[error(
        "{name} audio is not supported, only AAC-LC and HE-AAC: in OBS set the audio encoder \
         (Settings → Output) to FFmpeg AAC or CoreAudio AAC"
    )]
    UnsupportedObjectType { object_type: u8, name: String },
    #[error(
        "AAC at {rate} Hz is not supported, only 48000 and 44100 Hz: in OBS set Settings → Audio \
         → Sample Rate to 48 kHz"
    )]
    UnsupportedSampleRate { rate: u32 },
    #[error(
        "AAC channel configuration {config} is not supported, only mono and stereo: in OBS set \
         Settings → Audio → Channels to Stereo"
    )]
    UnsupportedChannels { config: u8 },
    #[error(
        "AAC with 960-sample frames is not supported: use an encoder with the standard 1024 \
         (FFmpeg AAC or CoreAudio AAC in OBS)"
    )]
    UnsupportedFrameLength,
    #[error("the AAC decoder refused the sequence header: {0}; use AAC-LC in the publisher")]
    DecoderSetup(#[source] symphonia_core::errors::Error),
    #[error(
        "corrupt AAC frame at {dts_ms} ms skipped: {source}; if this repeats, check the \
         publisher's audio encoder"
    )]
    Decode {
        dts_ms: u64,
        source: symphonia_core::errors::Error,
    },
    #[error("the Opus encoder could not be set up: {0}")]
    EncoderSetup(#[source] opus::Error),
    #[error("Opus encoding failed at timestamp {timestamp}: {source}")]
    Encode { timestamp: u64, source: opus::Error },
    #[error("the resampler to 48 kHz could not be set up: {0}")]
    ResamplerSetup(#[source] rubato::ResamplerConstructionError),
    #[error("resampling to 48 kHz failed: {0}")]
    Resample(#[source] rubato::ResampleError),
    #[error(
        "the AAC frame at {dts_ms} ms crashed the transcoder ({cause}); the frame was dropped \
         and the decoder rebuilt; if this repeats, check the publisher's audio encoder"
    )]
    Panicked { dts_ms: u64, cause: String },
}

/// One 20 ms Opus packet, ready for RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    pub data: Bytes,
    /// First sample, in 48 kHz units on the stream's timeline (dts in ms × 48).
    pub timestamp: u64,
    /// Samples per channel: always 960.
    pub duration: u32,
}

/// Decodes one stream's AAC and encodes it as Opus at 48 kHz.
///
/// A new AAC sequence header means a new `AacToOpus`: the config is fixed for
/// the transcoder's life.
pub struct AacToOpus {
    /// The AudioSpecificConfig, to build the decoder anew after a panic.
    config: Vec<u8>,
    decoder: AacDecoder,
    /// Brings the decoded rate to 48 kHz; `None` when it is 48 kHz already.
    resampler: Option<Fft<f32>>,
    encoder: opus::Encoder,
    channels: u16,
    /// The rate the decoder outputs, which the dts arithmetic counts in.
    input_rate: u32,
    /// One AAC frame, planar: the decoder's output or silence for a hole.
    frame: AudioBuffer<f32>,
    /// Resampler output, interleaved; kept to avoid an allocation per frame.
    resampled: Vec<f32>,
    /// Interleaved 48 kHz samples that do not yet fill a 20 ms packet.
    pending: Vec<f32>,
    /// Resampled frames still to drop at the start of a run, so the output
    /// lines up with the dts despite the resampler's delay.
    skip: usize,
    /// `None` until the first frame, whose dts starts the first run.
    run: Option<Run>,
}

/// A stretch of continuous input.
struct Run {
    start_ms: u64,
    /// AAC frames decoded or filled with silence since `start_ms`.
    frames: u64,
    /// Timestamp of `pending[0]`, in 48 kHz units.
    next_timestamp: u64,
}

impl AacToOpus {
    /// From an AudioSpecificConfig (the FLV AAC sequence header's body after its
    /// 2-byte tag header).
    ///
    /// HE-AAC is played from its AAC-LC core, without the SBR upper band: the
    /// decoder implements AAC-LC only, and the core is what HE-AAC keeps for
    /// such decoders.
    ///
    /// # Errors
    /// A config that is cut short or asks for what is unsupported: another
    /// object type than AAC-LC or HE-AAC (v2's parametric stereo included), a
    /// sample rate other than 48 or 44.1 kHz, more than 2 channels, 960-sample
    /// frames. Each says what to set in OBS.
    pub fn new(config: &[u8]) -> Result<Self, OpusError> {
        let parsed = AacConfig::parse(config)?;
        let decoder = contain(|| aac_decoder(config))
            .map_err(|cause| OpusError::Panicked { dts_ms: 0, cause })??;
        let frame = decoder.last_decoded().make_equivalent();

        let channels = usize::from(parsed.channels);
        let resampler = if parsed.core_rate == OPUS_RATE {
            None
        } else {
            let resampler = Fft::new(
                parsed.core_rate as usize,
                OPUS_RATE as usize,
                AAC_FRAME,
                channels,
                FixedSync::Input,
            )
            .map_err(OpusError::ResamplerSetup)?;
            Some(resampler)
        };
        let resampled =
            vec![0.0; resampler.as_ref().map_or(0, |r| r.output_frames_max()) * channels];

        let (opus_channels, bitrate) = if parsed.channels == 2 {
            (Channels::Stereo, 96_000)
        } else {
            (Channels::Mono, 64_000)
        };
        let mut encoder = opus::Encoder::new(OPUS_RATE, opus_channels, Application::Audio)
            .map_err(OpusError::EncoderSetup)?;
        encoder
            .set_bitrate(Bitrate::Bits(bitrate))
            .map_err(OpusError::EncoderSetup)?;

        Ok(Self {
            config: config.to_vec(),
            decoder,
            resampler,
            encoder,
            channels: parsed.channels,
            input_rate: parsed.core_rate,
            frame,
            resampled,
            pending: Vec::new(),
            skip: 0,
            run: None,
        })
    }

    /// Opus channels, the same as the AAC's (1 or 2).
    ///
    /// The SDP still says `opus/48000/2` either way: RFC 7587, 7 fixes the
    /// rtpmap at 48000 Hz (the RTP clock, whatever the audio) and 2 channels,
    /// and a mono Opus stream plays through that as it is.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Takes one raw AAC frame with its decode time (ms, stream timeline) and
    /// returns the Opus packets now complete (20 ms, 960 samples at 48 kHz
    /// each), oldest first. A frame more than [`MAX_HOLE_MS`] away from where
    /// the input was heading starts new timestamps at its own dts, dropping the
    /// samples that did not yet fill a packet.
    ///
    /// # Errors
    /// [`OpusError::Decode`] for a corrupt frame: the next frame finds a hole
    /// where it was, fills it with silence and is transcoded as usual. Encoder
    /// and resampler failures are returned too, though valid input does not
    /// cause them.
    /// [`OpusError::Panicked`] for a frame that panicked the decoder, the
    /// resampler or the encoder: the frame is dropped, the decoder rebuilt,
    /// and the next frame starts a new run at its own dts.
    pub fn push(&mut self, aac: &[u8], dts_ms: u64) -> Result<Vec<OpusPacket>, OpusError> {
        match contain(|| self.transcode(aac, dts_ms)) {
            Ok(result) => result,
            Err(cause) => {
                // Nothing of this frame's state is trusted: a fresh decoder,
                // and `follow` resets the rest when the next frame starts a run.
                self.run = None;
                self.decoder = contain(|| aac_decoder(&self.config)).map_err(|cause| {
                    OpusError::Panicked {
                        dts_ms,
                        cause: cause.clone(),
                    }
                })??;
                Err(OpusError::Panicked { dts_ms, cause })
            }
        }
    }

    fn transcode(&mut self, aac: &[u8], dts_ms: u64) -> Result<Vec<OpusPacket>, OpusError> {
        let missing = self.follow(dts_ms)?;
        for _ in 0..missing {
            self.frame.clear();
            self.frame.render_silence(None);
            self.feed()?;
        }

        let packet = Packet::new_from_slice(0, dts_ms, AAC_FRAME as u64, aac);
        let decoded = self
            .decoder
            .decode(&packet)
            .map_err(|source| OpusError::Decode { dts_ms, source })?;
        decoded.convert(&mut self.frame);
        self.feed()?;
        self.encode_pending()
    }

    /// Checks `dts_ms` against the current run. Returns how many frames went
    /// missing just before this one, or starts a new run.
    fn follow(&mut self, dts_ms: u64) -> Result<u64, OpusError> {
        let frame_ms_x_rate = AAC_FRAME as u64 * 1000;
        let rate = u64::from(self.input_rate);
        if let Some(run) = &self.run {
            let expected = run.start_ms + run.frames * frame_ms_x_rate / rate;
            if dts_ms.abs_diff(expected) <= MAX_HOLE_MS {
                // Whole frames only: FLV rounds each dts to the millisecond.
                let ahead = dts_ms.saturating_sub(expected);
                return Ok((ahead * rate + frame_ms_x_rate / 2) / frame_ms_x_rate);
            }
        }
        self.decoder.reset();
        self.encoder
            .reset_state()
            .map_err(OpusError::EncoderSetup)?;
        self.skip = match &mut self.resampler {
            Some(resampler) => {
                resampler.reset();
                resampler.output_delay()
            }
            None => 0,
        };
        self.pending.clear();
        self.run = Some(Run {
            start_ms: dts_ms,
            frames: 0,
            next_timestamp: dts_ms * u64::from(OPUS_RATE / 1000),
        });
        Ok(0)
    }

    /// Moves `frame` into `pending`, at 48 kHz and interleaved.
    fn feed(&mut self) -> Result<(), OpusError> {
        let channels = usize::from(self.channels);
        let planes = self.frame.planes();
        let planes = planes.planes();
        match &mut self.resampler {
            None => {
                for i in 0..self.frame.frames() {
                    self.pending.extend(planes.iter().map(|plane| plane[i]));
                }
            }
            Some(resampler) => {
                // Both adapters fit by construction: `frame` holds AAC_FRAME
                // samples per channel (the resampler's fixed input) and
                // `resampled` holds output_frames_max() per channel.
                let input = SequentialSliceOfSlices::new(planes, channels, self.frame.frames())
                    .expect("one plane per channel");
                let out_frames = self.resampled.len() / channels;
                let mut output =
                    InterleavedSlice::new_mut(&mut self.resampled, channels, out_frames)
                        .expect("sized for output_frames_max");
                let (_, written) = resampler
                    .process_into_buffer(&input, &mut output, None)
                    .map_err(OpusError::Resample)?;
                let skipped = self.skip.min(written);
                self.skip -= skipped;
                self.pending
                    .extend_from_slice(&self.resampled[skipped * channels..written * channels]);
            }
        }
        if let Some(run) = &mut self.run {
            run.frames += 1;
        }
        Ok(())
    }

    /// Encodes every whole 20 ms packet in `pending`.
    fn encode_pending(&mut self) -> Result<Vec<OpusPacket>, OpusError> {
        let Some(run) = &mut self.run else {
            return Ok(Vec::new());
        };
        let packet_len = OPUS_FRAME * usize::from(self.channels);
        let mut packets = Vec::with_capacity(self.pending.len() / packet_len);
        let mut used = 0;
        while self.pending.len() - used >= packet_len {
            let timestamp = run.next_timestamp;
            let data = self
                .encoder
                .encode_vec_float(&self.pending[used..used + packet_len], MAX_OPUS_PACKET)
                .map_err(|source| OpusError::Encode { timestamp, source })?;
            packets.push(OpusPacket {
                data: Bytes::from(data),
                timestamp,
                duration: OPUS_FRAME as u32,
            });
            run.next_timestamp += OPUS_FRAME as u64;
            used += packet_len;
        }
        self.pending.drain(..used);
        Ok(packets)
    }
}

/// symphonia's AAC decoder for an AudioSpecificConfig.
fn aac_decoder(config: &[u8]) -> Result<AacDecoder, OpusError> {
    let mut params = CodecParameters::new();
    params
        .for_codec(CODEC_TYPE_AAC)
        .with_extra_data(config.into());
    AacDecoder::try_new(&params, &DecoderOptions::default()).map_err(OpusError::DecoderSetup)
}

/// What the transcoder needs from an AudioSpecificConfig (ISO 14496-3, 1.6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AacConfig {
    /// The AAC-LC core's rate, which is what the decoder outputs.
    core_rate: u32,
    channels: u16,
}

impl AacConfig {
    fn parse(config: &[u8]) -> Result<Self, OpusError> {
        let mut bits = BitReader {
            data: config,
            pos: 0,
        };
        let truncated = || OpusError::ConfigTruncated { len: config.len() };

        let mut object_type = bits.object_type().ok_or_else(truncated)?;
        let core_rate = bits.sample_rate().ok_or_else(truncated)?;
        let channel_config = bits.read(4).ok_or_else(truncated)? as u8;
        if object_type == OBJECT_SBR {
            // Explicit HE-AAC (1.6.2.1, Table 1.15): the extension (output)
            // rate, then the core's own object type.
            bits.sample_rate().ok_or_else(truncated)?;
            object_type = bits.object_type().ok_or_else(truncated)?;
        }
        if object_type != OBJECT_AAC_LC {
            return Err(OpusError::UnsupportedObjectType {
                object_type,
                name: object_type_name(object_type),
            });
        }
        // GASpecificConfig (4.4.1): frameLengthFlag comes first.
        if bits.read(1).ok_or_else(truncated)? == 1 {
            return Err(OpusError::UnsupportedFrameLength);
        }
        if !SUPPORTED_RATES.contains(&core_rate) {
            return Err(OpusError::UnsupportedSampleRate { rate: core_rate });
        }
        let channels = match channel_config {
            1 | 2 => u16::from(channel_config),
            config => return Err(OpusError::UnsupportedChannels { config }),
        };
        Ok(Self {
            core_rate,
            channels,
        })
    }
}

/// A name for the error message, as encoder settings call it.
fn object_type_name(object_type: u8) -> String {
    match object_type {
        1 => "AAC Main".to_string(),
        3 => "AAC SSR".to_string(),
        4 => "AAC LTP".to_string(),
        23 => "AAC-LD".to_string(),
        39 => "AAC-ELD".to_string(),
        OBJECT_PS => "HE-AAC v2 (parametric stereo)".to_string(),
        other => format!("MPEG-4 audio object type {other}"),
    }
}

/// Reads an AudioSpecificConfig's bit fields, most significant bit first.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    /// `None` past the end.
    fn read(&mut self, count: usize) -> Option<u32> {
        let mut value = 0;
        for _ in 0..count {
            let byte = self.data.get(self.pos / 8)?;
            value = (value << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(value)
    }

    /// GetAudioObjectType() (1.6.2.1): 31 escapes to 32 + 6 more bits.
    fn object_type(&mut self) -> Option<u8> {
        match self.read(5)? {
            31 => Some(32 + self.read(6)? as u8),
            object_type => Some(object_type as u8),
        }
    }

    /// samplingFrequencyIndex, or the 24-bit frequency that index 15 announces.
    fn sample_rate(&mut self) -> Option<u32> {
        match self.read(4)? {
            15 => self.read(24),
            // Indices 13 and 14 are reserved: no rate, which the support check refuses.
            index => Some(AAC_RATES.get(index as usize).copied().unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of `STEREO_48K` with a few bits flipped, found by mutating
    /// it: symphonia-codec-aac 0.5.5 indexes past a table on it ("index out
    /// of bounds: the len is 50 but the index is 50", aac/ics/mod.rs:365).
    const PANICS_SYMPHONIA: &[u8] = include_bytes!("../../tests/data/aac-panics-symphonia.bin");

    /// 1 s of a 440 Hz sine, made with
    /// `ffmpeg -f lavfi -i sine=frequency=440:sample_rate=48000 -ac 2 -t 1 -c:a aac -b:a 128k -f adts`.
    const STEREO_48K: &[u8] = include_bytes!("../../tests/data/sine-440-48k-stereo.aac");
    /// The same with `sample_rate=44100 -ac 1 -b:a 64k`.
    const MONO_44K1: &[u8] = include_bytes!("../../tests/data/sine-440-44k1-mono.aac");
    /// The same with `sample_rate=24000 -ac 1 -t 0.5 -b:a 32k`: the shape of
    /// an HE-AAC core.
    const MONO_24K: &[u8] = include_bytes!("../../tests/data/sine-440-24k-mono.aac");

    /// An ADTS capture taken apart as the hub delivers it.
    struct Capture<'a> {
        config: Vec<u8>,
        rate: u32,
        frames: Vec<&'a [u8]>,
    }

    impl<'a> Capture<'a> {
        /// Splits ADTS frames (ISO 13818-7, 6.2) and builds the
        /// AudioSpecificConfig their headers imply.
        fn from_adts(mut data: &'a [u8]) -> Self {
            let mut frames = Vec::new();
            let mut header = [0u8; 7];
            while !data.is_empty() {
                assert_eq!(data[0], 0xff, "ADTS sync");
                header.copy_from_slice(&data[..7]);
                let protection_absent = header[1] & 1 == 1;
                let frame_len = (usize::from(header[3] & 0x03) << 11)
                    | (usize::from(header[4]) << 3)
                    | usize::from(header[5] >> 5);
                let header_len = if protection_absent { 7 } else { 9 };
                frames.push(&data[header_len..frame_len]);
                data = &data[frame_len..];
            }
            let object_type = (header[2] >> 6) + 1;
            let rate_index = (header[2] >> 2) & 0x0f;
            let channel_config = ((header[2] & 1) << 2) | (header[3] >> 6);
            let asc = (u16::from(object_type) << 11)
                | (u16::from(rate_index) << 7)
                | (u16::from(channel_config) << 3);
            Capture {
                config: asc.to_be_bytes().to_vec(),
                rate: AAC_RATES[usize::from(rate_index)],
                frames,
            }
        }

        fn dts_ms(&self, index: usize) -> u64 {
            index as u64 * AAC_FRAME as u64 * 1000 / u64::from(self.rate)
        }

        /// Pushes every frame at its own dts plus `offset_ms`.
        fn push_all(&self, transcoder: &mut AacToOpus, offset_ms: u64) -> Vec<OpusPacket> {
            let mut packets = Vec::new();
            for (i, frame) in self.frames.iter().enumerate() {
                packets.extend(transcoder.push(frame, offset_ms + self.dts_ms(i)).unwrap());
            }
            packets
        }

        /// Length in 20 ms packets.
        fn packets_expected(&self) -> usize {
            self.frames.len() * AAC_FRAME * OPUS_RATE as usize / self.rate as usize / OPUS_FRAME
        }
    }

    /// Decodes packets back to 48 kHz, one Vec per channel.
    fn decode(packets: &[OpusPacket], channels: u16) -> Vec<Vec<f32>> {
        let mode = if channels == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        };
        let mut decoder = opus::Decoder::new(OPUS_RATE, mode).unwrap();
        let channels = usize::from(channels);
        let mut out = vec![Vec::new(); channels];
        let mut buf = vec![0.0f32; OPUS_FRAME * channels];
        for packet in packets {
            let n = decoder.decode_float(&packet.data, &mut buf, false).unwrap();
            assert_eq!(n, OPUS_FRAME, "samples in packet at {}", packet.timestamp);
            for (i, sample) in buf.iter().enumerate() {
                out[i % channels].push(*sample);
            }
        }
        out
    }

    /// Frequency from the rising zero crossings, interpolated between samples,
    /// over the steady middle (the first and last 100 ms hold encoder priming
    /// and fade).
    fn tone_hz(signal: &[f32]) -> f64 {
        let margin = OPUS_RATE as usize / 10;
        let middle = &signal[margin..signal.len() - margin];
        let crossings: Vec<f64> = middle
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
            .map(|(i, w)| i as f64 + f64::from(w[0] / (w[0] - w[1])))
            .collect();
        assert!(crossings.len() > 10, "only {} crossings", crossings.len());
        let span = crossings[crossings.len() - 1] - crossings[0];
        (crossings.len() - 1) as f64 * f64::from(OPUS_RATE) / span
    }

    fn rms(signal: &[f32]) -> f64 {
        let sum: f64 = signal.iter().map(|s| f64::from(*s).powi(2)).sum();
        (sum / signal.len() as f64).sqrt()
    }

    /// Checks that a channel is the test tone: 440 Hz ± 5 % and well above
    /// silence (lavfi's sine has amplitude 1/8, RMS 0.088).
    fn assert_tone(signal: &[f32], what: &str) {
        let hz = tone_hz(signal);
        assert!((418.0..=462.0).contains(&hz), "{what}: tone at {hz:.1} Hz");
        let level = rms(signal);
        assert!(level > 0.05, "{what}: RMS {level:.4}");
    }

    fn assert_steps_of_960(packets: &[OpusPacket], first: u64) {
        for (i, packet) in packets.iter().enumerate() {
            assert_eq!(
                packet.timestamp,
                first + i as u64 * 960,
                "packet {i} of {}",
                packets.len()
            );
            assert_eq!(packet.duration, 960);
        }
    }

    #[test]
    fn stereo_48k_becomes_a_440_hz_opus_tone() {
        let capture = Capture::from_adts(STEREO_48K);
        let mut transcoder = AacToOpus::new(&capture.config).unwrap();
        assert_eq!(transcoder.channels(), 2);
        let packets = capture.push_all(&mut transcoder, 0);
        assert!(
            packets.len().abs_diff(capture.packets_expected()) <= 2,
            "{} packets for {} AAC frames",
            packets.len(),
            capture.frames.len()
        );
        assert_steps_of_960(&packets, 0);
        let channels = decode(&packets, 2);
        assert_tone(&channels[0], "left");
        assert_tone(&channels[1], "right");
    }

    #[test]
    fn mono_44k1_is_resampled_to_48k() {
        let capture = Capture::from_adts(MONO_44K1);
        let mut transcoder = AacToOpus::new(&capture.config).unwrap();
        assert_eq!(transcoder.channels(), 1);
        // Starting mid-stream: timestamps begin at that dts.
        let packets = capture.push_all(&mut transcoder, 10_000);
        assert!(
            packets.len().abs_diff(capture.packets_expected()) <= 2,
            "{} packets for {} AAC frames",
            packets.len(),
            capture.frames.len()
        );
        assert_steps_of_960(&packets, 10_000 * 48);
        // Unresampled 44.1 kHz played at 48 kHz would sound at 479 Hz.
        assert_tone(&decode(&packets, 1)[0], "mono");
    }

    /// Phase of the 440 Hz tone, as a delay in samples within one period, from
    /// its correlation with a sine and a cosine over the steady middle.
    fn tone_delay(signal: &[f32]) -> f64 {
        let omega = 2.0 * std::f64::consts::PI * 440.0 / f64::from(OPUS_RATE);
        let margin = OPUS_RATE as usize / 10;
        let (mut cos, mut sin) = (0.0, 0.0);
        for (n, sample) in signal
            .iter()
            .enumerate()
            .take(signal.len() - margin)
            .skip(margin)
        {
            cos += f64::from(*sample) * (omega * n as f64).cos();
            sin += f64::from(*sample) * (omega * n as f64).sin();
        }
        ((-cos).atan2(sin) / omega).rem_euclid(f64::from(OPUS_RATE) / 440.0)
    }

    #[test]
    fn resampled_output_lines_up_with_the_dts() {
        let capture = Capture::from_adts(MONO_44K1);
        let mut transcoder = AacToOpus::new(&capture.config).unwrap();
        let packets = capture.push_all(&mut transcoder, 0);
        // The tone starts at 0 in the input. The output is late by the AAC
        // encoder's priming (1024 samples at 44.1 kHz) and the Opus encoder's
        // lookahead (312 samples), but not by the resampler's delay (160 samples).
        let expected = (1024.0 * 48_000.0 / 44_100.0 + 312.0) % (48_000.0 / 440.0);
        let delay = tone_delay(&decode(&packets, 1)[0]);
        assert!(
            (delay - expected).abs() < 3.0,
            "tone delayed by {delay:.1} samples (mod one period), expected {expected:.1}"
        );
    }

    #[test]
    fn he_aac_is_played_from_its_core() {
        let capture = Capture::from_adts(MONO_24K);
        // Explicit HE-AAC: SBR object type, 24 kHz core, mono, 48 kHz
        // extension rate, AAC-LC core, 1024-sample frames.
        let mut bits = 0u64;
        for (value, width) in [(5, 5), (6, 4), (1, 4), (3, 4), (2, 5), (0, 3)] {
            bits = (bits << width) | value;
        }
        let config = (bits << 7).to_be_bytes()[4..].to_vec();
        assert_eq!(AacConfig::parse(&config).unwrap().core_rate, 24_000);
        let mut transcoder = AacToOpus::new(&config).unwrap();
        let packets = capture.push_all(&mut transcoder, 0);
        assert!(packets.len().abs_diff(capture.packets_expected()) <= 2);
        assert_steps_of_960(&packets, 0);
        assert_tone(&decode(&packets, 1)[0], "HE-AAC core");
    }

    #[test]
    fn a_jump_restarts_timestamps_at_the_new_dts() {
        let capture = Capture::from_adts(STEREO_48K);
        let mut transcoder = AacToOpus::new(&capture.config).unwrap();
        let (first, second) = capture.frames.split_at(20);
        let mut before = Vec::new();
        for (i, frame) in first.iter().enumerate() {
            before.extend(transcoder.push(frame, capture.dts_ms(i)).unwrap());
        }
        // 20 frames are 20480 samples: 21 packets, and 320 samples that the
        // jump drops.
        assert_eq!(before.len(), 21);
        assert_steps_of_960(&before, 0);

        // Frames skipped upstream: the next one arrives 5 s later.
        let resume_ms = 5_000;
        let mut after = Vec::new();
        for (i, frame) in second.iter().enumerate() {
            after.extend(
                transcoder
                    .push(frame, resume_ms + capture.dts_ms(i))
                    .unwrap(),
            );
        }
        assert_steps_of_960(&after, resume_ms * 48);
        assert_eq!(after.len(), second.len() * AAC_FRAME / OPUS_FRAME);

        // A publisher restart: dts goes back to 0.
        let restarted = capture.push_all(&mut transcoder, 0);
        assert_steps_of_960(&restarted, 0);
        assert_tone(&decode(&restarted, 2)[0], "after restart");
    }

    #[test]
    fn small_holes_are_filled_with_silence() {
        let capture = Capture::from_adts(STEREO_48K);
        let mut transcoder = AacToOpus::new(&capture.config).unwrap();
        let mut packets = Vec::new();
        for (i, frame) in capture.frames.iter().enumerate() {
            // Frames 10 to 12 (64 ms) never arrive.
            if !(10..13).contains(&i) {
                packets.extend(transcoder.push(frame, capture.dts_ms(i)).unwrap());
            }
        }
        assert_steps_of_960(&packets, 0);
        assert_eq!(packets.len(), capture.frames.len() * AAC_FRAME / OPUS_FRAME);
    }

    #[test]
    fn a_corrupt_frame_fails_alone() {
        let capture = Capture::from_adts(STEREO_48K);
        let mut transcoder = AacToOpus::new(&capture.config).unwrap();
        let mut packets = Vec::new();
        let mut failures = Vec::new();
        for (i, frame) in capture.frames.iter().enumerate() {
            let frame = if i == 15 { &frame[..4] } else { frame };
            match transcoder.push(frame, capture.dts_ms(i)) {
                Ok(more) => packets.extend(more),
                Err(err) => failures.push((i, err)),
            }
        }
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].0, 15);
        assert!(
            matches!(failures[0].1, OpusError::Decode { dts_ms: 320, .. }),
            "{}",
            failures[0].1
        );
        // The bad frame became 21 ms of silence, so nothing shifted.
        assert_steps_of_960(&packets, 0);
        assert_eq!(packets.len(), capture.frames.len() * AAC_FRAME / OPUS_FRAME);
        let left = &decode(&packets, 2)[0];
        assert_tone(&left[left.len() / 2..], "after the corrupt frame");
    }

    #[test]
    fn a_frame_that_panics_the_decoder_costs_that_frame_only() {
        let capture = Capture::from_adts(STEREO_48K);
        let mut transcoder = AacToOpus::new(&capture.config).unwrap();
        let err = transcoder.push(PANICS_SYMPHONIA, 0).unwrap_err();
        let OpusError::Panicked { dts_ms: 0, cause } = &err else {
            panic!("{err}");
        };
        assert!(cause.contains("index out of bounds"), "{cause}");
        assert!(err.to_string().contains("decoder rebuilt"), "{err}");
        // The same transcoder goes on: the next frames start a new run at
        // their own dts and play.
        let mut packets = Vec::new();
        for (i, frame) in capture.frames.iter().enumerate().skip(1) {
            packets.extend(transcoder.push(frame, capture.dts_ms(i)).unwrap());
        }
        assert_steps_of_960(&packets, capture.dts_ms(1) * 48);
        assert!(
            packets.len().abs_diff(capture.packets_expected()) <= 3,
            "{} packets",
            packets.len()
        );
        let left = &decode(&packets, 2)[0];
        assert_tone(left, "after the panicking frame");
        // Again in mid-stream, a dozen times: each costs its frame.
        let mut panicked = 0;
        for (i, frame) in capture.frames.iter().enumerate() {
            let frame = if i % 4 == 3 { PANICS_SYMPHONIA } else { frame };
            match transcoder.push(frame, 10_000 + capture.dts_ms(i)) {
                Err(OpusError::Panicked { .. }) => panicked += 1,
                Err(OpusError::Decode { .. }) | Ok(_) => {}
                Err(other) => panic!("frame {i}: {other}"),
            }
        }
        assert!(
            panicked >= 1,
            "the frame panics the decoder in mid-stream too"
        );
    }

    #[test]
    fn configs_it_cannot_play_are_refused_with_advice() {
        let asc = |object_type: u16, rate_index: u16, channels: u16| {
            ((object_type << 11) | (rate_index << 7) | (channels << 3))
                .to_be_bytes()
                .to_vec()
        };
        let refused = |config: &[u8]| AacToOpus::new(config).err().expect("refused");

        let err = refused(&asc(2, 3, 6));
        assert!(matches!(err, OpusError::UnsupportedChannels { config: 6 }));
        assert!(err.to_string().contains("Channels to Stereo"), "{err}");
        let err = refused(&asc(2, 5, 2));
        assert!(matches!(
            err,
            OpusError::UnsupportedSampleRate { rate: 32000 }
        ));
        assert!(err.to_string().contains("48 kHz"), "{err}");
        let err = refused(&asc(1, 3, 2));
        assert!(err.to_string().starts_with("AAC Main"), "{err}");
        // HE-AAC v2: PS object type, 24 kHz core, 48 kHz extension, AAC-LC.
        let err = refused(&[0xeb, 0x09, 0x88, 0x00]);
        assert!(
            matches!(
                err,
                OpusError::UnsupportedObjectType {
                    object_type: 29,
                    ..
                }
            ),
            "{err}"
        );
        let mut long_frames = asc(2, 3, 2);
        long_frames[1] |= 0x04;
        assert!(matches!(
            refused(&long_frames),
            OpusError::UnsupportedFrameLength
        ));
        assert!(matches!(
            refused(&[0x12]),
            OpusError::ConfigTruncated { len: 1 }
        ));
    }
}
