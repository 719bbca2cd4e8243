#!/usr/bin/env python3
"""Live action recognition from a camera, a stream or a file, written as the loop it is:

    python apps/camera.py /dev/video0                      # JSON lines on stdout
    python apps/camera.py rtsp://cam/stream annotated.mp4  # and an annotated video
    python apps/camera.py clip.mp4 --model engines/student.int8.engine --serve 127.0.0.1:8080

Load the model, open the input, then while it streams: capture the windows that are ready,
classify them (smoothing, events, a JSON line each), overlay the label and render it to the page,
write the frames to the output. The model says what a window is: a clip of its T frames, or one
frame for a streaming student, which it steps. `fts-edge camera` runs the same pieces
(fts_edge.live.camera.iterate) with every option: several inputs, teacher mode, reconnect limits,
real-time playback.
"""
import argparse
import sys

import fts_edge
from fts_edge.core.errors import guarded
from fts_edge.device.locate import default_model
from fts_edge.live.camera import JsonLines, LiveApp, Outputs, check_output
from fts_edge.live.stream import LIVE, LiveSettings, Streams


def camera(a) -> int:
    model = fts_edge.load(a.model or default_model())
    net = model.classifier
    say = JsonLines(None)  # one JSON object a line on stdout: docs/camera-jsonl.md
    if a.output:
        check_output(a.output, overwrite=True)
    live = LiveSettings(every=a.every)
    with Streams.open([a.input], net, live.every, keep_frames=bool(a.serve), every_frame=bool(a.output),
                      on_event=say) as stream:
        output = Outputs(a.output, a.serve, display=False, say=say, fps=stream.fps)
        app = LiveApp(net, stream.uris, live, stream.every, say, output)
        app.start()
        try:
            while stream.streaming:
                for result in app.classify(stream.take(), stream.dropped):  # capture, classify
                    app.render(result)  # overlay, render
                app.write_frames(stream.new_frames())  # the output video, every frame
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
