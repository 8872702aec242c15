//! Fragmented MP4 (CMAF) boxes for HLS: the init segment and the `moof`+`mdat`
//! fragments that make up parts and segments (pure; boxes via mp4-atom).
//!
//! Track 1 is H.264 (`avc1`, timescale 90 kHz), track 2 AAC (`mp4a`, timescale
//! the sample rate), as ISO/IEC 14496-12 and 23000-19 (CMAF) lay them out.

use bytes::Bytes;
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, Dinf, Dref, Encode, Esds, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf, Moof,
    Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trak,
    Trex, Trun, TrunEntry, TrunSamples, Url, Visual, Vmhd, esds,
};
use thiserror::Error;

pub const VIDEO_TRACK: u32 = 1;
pub const AUDIO_TRACK: u32 = 2;
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// `sample_depends_on` = 2 (depends on no other sample): a sync sample.
const SYNC_SAMPLE: u32 = 0x0200_0000;
/// `sample_depends_on` = 1 and `sample_is_non_sync_sample`.
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

#[derive(Debug, Error)]
pub enum Fmp4Error {
    #[error("the H.264 configuration record cannot be read: {0}")]
    Avcc(mp4_atom::Error),
    #[error("cannot encode an MP4 box: {0}")]
    Encode(#[from] mp4_atom::Error),
}

/// The video track's codec setup.
#[derive(Debug, Clone)]
pub struct VideoTrack {
    /// AVCDecoderConfigurationRecord, as in the FLV sequence header.
    pub avcc: Bytes,
    pub width: u16,
    pub height: u16,
}

/// The audio track's codec setup.
#[derive(Debug, Clone)]
pub struct AudioTrack {
    /// AudioSpecificConfig, as in the FLV sequence header.
    pub config: Bytes,
    pub sample_rate: u32,
    pub channels: u16,
}

/// One access unit in a fragment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub data: Bytes,
    /// In the track's timescale.
    pub duration: u32,
    /// Composition offset in the track's timescale.
    pub cts: i32,
    pub sync: bool,
}

/// A track's samples in one fragment.
#[derive(Debug, Clone)]
pub struct Run {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
}

/// `ftyp` + `moov` with empty sample tables and `mvex`, as fragmented files have.
///
/// # Errors
/// A configuration record that does not parse.
pub fn init_segment(video: &VideoTrack, audio: Option<&AudioTrack>) -> Result<Bytes, Fmp4Error> {
    let avcc = Avcc::decode_body(&mut video.avcc.as_ref()).map_err(Fmp4Error::Avcc)?;
    let mut traks = vec![Trak {
        tkhd: Tkhd {
            track_id: VIDEO_TRACK,
            enabled: true,
            in_movie: true,
            width: video.width.into(),
            height: video.height.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "Tinsel video".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: data_information(),
                stbl: sample_table(
                    Avc1 {
                        visual: Visual {
                            data_reference_index: 1,
                            width: video.width,
                            height: video.height,
                            horizresolution: 72.into(),
                            vertresolution: 72.into(),
                            frame_count: 1,
                            compressor: "".into(),
                            depth: 24,
                        },
                        avcc,
                        btrt: None,
                        colr: None,
                        pasp: None,
                        taic: None,
                        fiel: None,
                        spatial: Default::default(),
                    }
                    .into(),
                ),
                ..Default::default()
            },
        },
        ..Default::default()
    }];
    if let Some(audio) = audio {
        let config = &audio.config;
        let object_type = config.first().map_or(2, |b| b >> 3);
        let freq_index = config
            .first()
            .zip(config.get(1))
            .map_or(3, |(a, b)| ((a & 0x07) << 1) | (b >> 7));
        let chan_conf = config.get(1).map_or(2, |b| (b >> 3) & 0x0f);
        traks.push(Trak {
            tkhd: Tkhd {
                track_id: AUDIO_TRACK,
                alternate_group: 1,
                enabled: true,
                in_movie: true,
                volume: 1.into(),
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: audio.sample_rate,
                    language: "und".into(),
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: b"soun".into(),
                    name: "Tinsel audio".into(),
                },
                minf: Minf {
                    smhd: Some(Smhd::default()),
                    dinf: data_information(),
                    stbl: sample_table(
                        Mp4a {
                            audio: Audio {
                                data_reference_index: 1,
                                channel_count: audio.channels,
                                sample_size: 16,
                                sample_rate: (audio.sample_rate.min(u32::from(u16::MAX)) as u16)
                                    .into(),
                            },
                            esds: Esds {
                                es_desc: esds::EsDescriptor {
                                    es_id: AUDIO_TRACK as u16,
                                    dec_config: esds::DecoderConfig {
                                        // ISO/IEC 14496-1 Table 5: 0x40 is MPEG-4 Audio;
                                        // stream type 5 is an audio stream.
                                        object_type_indication: 0x40,
                                        stream_type: 5,
                                        dec_specific: Some(esds::DecoderSpecific {
                                            profile: object_type,
                                            freq_index,
                                            chan_conf,
                                            raw: config.to_vec(),
                                        }),
                                        ..Default::default()
                                    },
                                    ..Default::default()
                                },
                            },
                            btrt: None,
                            taic: None,
                        }
                        .into(),
                    ),
                    ..Default::default()
                },
            },
            ..Default::default()
        });
    }
    let trex = traks
        .iter()
        .map(|trak| Trex {
            track_id: trak.tkhd.track_id,
            default_sample_description_index: 1,
            ..Default::default()
        })
        .collect();
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: traks.len() as u32 + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            trex,
            ..Default::default()
        }),
        trak: traks,
        ..Default::default()
    };
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    };
    let mut out = Vec::new();
    ftyp.encode(&mut out)?;
    moov.encode(&mut out)?;
    Ok(out.into())
}

fn data_information() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![
                Url {
                    location: String::new(),
                }
                .into(),
            ],
        },
    }
}

fn sample_table(codec: mp4_atom::Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

/// One `moof` + `mdat`: a CMAF chunk, which is what an LL-HLS part is.
///
/// # Errors
/// Only if mp4-atom cannot encode the boxes.
pub fn fragment(sequence_number: u32, runs: &[Run]) -> Result<Bytes, Fmp4Error> {
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: runs
            .iter()
            .filter(|run| !run.samples.is_empty())
            .map(|run| Traf {
                tfhd: Tfhd {
                    track_id: run.track_id,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: run.base_decode_time,
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: TrunSamples::Explicit(
                        run.samples
                            .iter()
                            .map(|sample| TrunEntry {
                                duration: Some(sample.duration),
                                size: Some(sample.data.len() as u32),
                                flags: Some(if sample.sync {
                                    SYNC_SAMPLE
                                } else {
                                    NON_SYNC_SAMPLE
                                }),
                                cts: (run.track_id == VIDEO_TRACK).then_some(i64::from(sample.cts)),
                            })
                            .collect(),
                    ),
                }],
                ..Default::default()
            })
            .collect(),
    };
    // The offsets do not change the size of the moof: measure it, then point
    // each run at its bytes in the mdat that follows (relative to the moof).
    let mut sized = Vec::new();
    moof.encode(&mut sized)?;
    let mdat_header = 8;
    let mut offset = sized.len() + mdat_header;
    for (traf, run) in moof
        .traf
        .iter_mut()
        .zip(runs.iter().filter(|run| !run.samples.is_empty()))
    {
        traf.trun[0].data_offset = Some(offset as i32);
        offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    let mdat_len = offset - sized.len();
    let mut out = Vec::with_capacity(offset);
    moof.encode(&mut out)?;
    out.extend_from_slice(&(mdat_len as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for run in runs {
        for sample in &run.samples {
            out.extend_from_slice(&sample.data);
        }
    }
    Ok(out.into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mp4_atom::{Any, Decode};

    pub(crate) const AVCC: &[u8] = &[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0,
        0xf1, 0x83, 0x19, 0x60, 0x01, 0x00, 0x04, 0x68, 0xef, 0x8f, 0xcb, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    fn tracks() -> (VideoTrack, AudioTrack) {
        (
            VideoTrack {
                avcc: Bytes::from_static(AVCC),
                width: 1280,
                height: 720,
            },
            AudioTrack {
                config: Bytes::from_static(&[0x11, 0x90]),
                sample_rate: 48000,
                channels: 2,
            },
        )
    }

    #[test]
    fn init_segment_reads_back_with_both_tracks() {
        let (video, audio) = tracks();
        let bytes = init_segment(&video, Some(&audio)).unwrap();
        let mut buf = bytes.as_ref();
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        assert_eq!(ftyp.major_brand, b"iso6".into());
        let moov = Moov::decode(&mut buf).unwrap();
        assert_eq!(moov.trak.len(), 2);
        assert_eq!(moov.trak[0].mdia.mdhd.timescale, VIDEO_TIMESCALE);
        assert_eq!(moov.trak[1].mdia.mdhd.timescale, 48000);
        assert_eq!(moov.mvex.unwrap().trex.len(), 2);
    }

    #[test]
    fn fragment_offsets_point_at_the_samples() {
        let video = Run {
            track_id: VIDEO_TRACK,
            base_decode_time: 9000,
            samples: vec![
                Sample {
                    data: Bytes::from_static(b"KEYFRAME"),
                    duration: 3000,
                    cts: 0,
                    sync: true,
                },
                Sample {
                    data: Bytes::from_static(b"P1"),
                    duration: 3000,
                    cts: 0,
                    sync: false,
                },
            ],
        };
        let audio = Run {
            track_id: AUDIO_TRACK,
            base_decode_time: 4800,
            samples: vec![Sample {
                data: Bytes::from_static(b"AAC"),
                duration: 1024,
                cts: 0,
                sync: true,
            }],
        };
        let bytes = fragment(7, &[video, audio]).unwrap();
        let mut buf = bytes.as_ref();
        let moof = Moof::decode(&mut buf).unwrap();
        assert_eq!(moof.mfhd.sequence_number, 7);
        let video_offset = moof.traf[0].trun[0].data_offset.unwrap() as usize;
        let audio_offset = moof.traf[1].trun[0].data_offset.unwrap() as usize;
        assert_eq!(&bytes[video_offset..video_offset + 10], b"KEYFRAMEP1");
        assert_eq!(&bytes[audio_offset..audio_offset + 3], b"AAC");
        assert_eq!(
            moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
            9000
        );
        let mdat = Any::decode(&mut buf).unwrap();
        assert!(matches!(mdat, Any::Mdat(_)), "an mdat follows the moof");
    }
}
