//! Regular files the job writes: sizes and contents at the checkpoint, rewound at restore so
//! that output is neither lost nor duplicated. The image type is [`cairn_image::WrittenFile`].

pub mod capture;
pub mod restore;

pub use capture::{
    capture_written, parse_file_capture, CheckpointOptions, FileCapture, DEFAULT_FILE_CAPTURE_MAX,
    FILE_CAPTURE_MAX_ENV,
};
pub use restore::rewind;
