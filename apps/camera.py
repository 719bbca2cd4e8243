#!/usr/bin/env python3
"""Live action recognition from a camera, a stream or a file, written as the loop it is:

    python apps/camera.py /dev/video0                      # JSON lines on stdout
    python apps/camera.py rtsp://cam/stream annotated.mp4  # and an annotated video
    python apps/camera.py clip.mp4 --model engines/student.int8.engine --serve 127.0.0.1:8080

Load the classifier, open the input, then: take the windows that are ready, classify them
(smoothing, events, overlay, page and JSON line inside), write the frames to the output, until
the input ends. `fts-edge camera` runs the same pieces (fts_edge.camera.run) with every option:
several inputs, teacher mode, reconnect limits, real-time playback.
"""
import argparse
import sys

from fts_edge.camera import JsonLines, LiveApp, Outputs, check_output, default_model
from fts_edge.errors import guarded
from fts_edge.runtime import load_classifier
from fts_edge.stream import LIVE, LiveSettings, Streams


def camera(a) -> int:
    net = load_classifier(a.model or default_model())
    say = JsonLines(None)  # one JSON object a line on stdout: docs/camera-jsonl.md
    if a.output:
        check_output(a.output, overwrite=True)
    with Streams.open([a.input], net.spec, a.every, keep_frames=bool(a.serve), every_frame=bool(a.output),
                      on_event=say) as stream:
        output = Outputs(a.output, a.serve, display=False, say=say, fps=stream.fps)
        app = LiveApp(net, stream.uris, LiveSettings(every=a.every), say, output)
        app.start()
        try:
            while stream.streaming:
                app.classify(stream.take(), stream.dropped)
                app.write_frames(stream.new_frames())
        finally:
            app.write_frames(stream.new_frames())
            output.finish(None)
    say(app.summary(stream, None, None))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Classify the actions in a camera, a stream or a video file.")
    p.add_argument("input", help="/dev/video0, csi://0, rtsp://..., a video file, or synthetic://")
    p.add_argument("output", nargs="?", help="an annotated video to write (.mp4, .avi, .mkv, .mov), replaced if there")
    p.add_argument("--model", help="engine, ONNX or checkpoint (default: the newest under engines/ or runs/)")
    p.add_argument("--every", type=int, default=LIVE.every, help="classify every N frames (default %(default)s)")
    p.add_argument("--serve", metavar="HOST:PORT", help="a live page for a browser (no authentication: keep it local)")
    return guarded(camera, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
