"""Reading videos: probing, exact and fast frame sampling, streaming; procedural videos."""

from longvid.video.container import FrameIndex, VideoInfo, frame_index, probe
from longvid.video.frames import DecodeStats, Frames
from longvid.video.plan import minimum_decodes, uniform_indices
from longvid.video.sampling import FrameReader, iter_frames, sample_frames
from longvid.video.sheet import contact_sheet, save_contact_sheet
from longvid.video.stamp import read_index_stamp, stamp_index
from longvid.video.synth import Event, Scene, random_scene, write_video

__all__ = [
    "DecodeStats",
    "Event",
    "FrameIndex",
    "FrameReader",
    "Frames",
    "Scene",
    "VideoInfo",
    "contact_sheet",
    "frame_index",
    "iter_frames",
    "minimum_decodes",
    "probe",
    "random_scene",
    "read_index_stamp",
    "sample_frames",
    "save_contact_sheet",
    "stamp_index",
    "uniform_indices",
    "write_video",
]
