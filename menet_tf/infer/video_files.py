"""Video files among ``menet-tf derain``'s inputs: telling them from photos, naming their outputs,
refusing what must not be written, and de-raining each clip with the others going on when one
fails (``menet_tf.infer.video`` de-rains one clip).
"""
import glob
import os

from menet_tf.errors import DataError, MenetError
from menet_tf.infer import photos, video_io


def _folder_videos(folder, recursive):
    if not recursive:
        return [(os.path.join(folder, f), f) for f in sorted(os.listdir(folder))
                if video_io.is_video(f) and os.path.isfile(os.path.join(folder, f))]
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if video_io.is_video(f):
                path = os.path.join(root, f)
                found.append((path, os.path.relpath(path, folder)))
    return found


def split_inputs(inputs, recursive=False):
    """(photo inputs, videos): the inputs ``batch.derain_files`` should list (files, folders,
    the photos a glob matched; [] when they hold no photo), and [(video path, relative name)]
    of the video files given, in folders and matched by globs, each once."""
    photo_inputs, videos, seen = [], [], set()

    def add(path, rel):
        if os.path.abspath(path) not in seen:
            seen.add(os.path.abspath(path))
            videos.append((path, rel))

    for item in map(os.fspath, inputs):
        if os.path.isfile(item) and video_io.is_video(item):
            add(item, os.path.basename(item))
        elif os.path.isdir(item):
            for path, rel in _folder_videos(item, recursive):
                add(path, rel)
            photo_inputs.append(item)
        elif not os.path.exists(item) and glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=recursive) if os.path.isfile(p))
            for path in (p for p in matches if video_io.is_video(p)):
                add(path, os.path.basename(path))
            rest = [p for p in matches if not video_io.is_video(p)]
            photo_inputs += rest if matches else [item]  # no match: derain_files says so
        else:
            photo_inputs.append(item)
    if videos and photo_inputs and not photos.list_photos(photo_inputs, recursive):
        photo_inputs = []  # folders of clips only
    return photo_inputs, videos


def output_paths(videos, out, fmt="same"):
    """[(output path, muxer)] of each video: OUT itself for a single clip when OUT has a video
    extension, else OUT/<relative name> in its container (``--format`` mp4|mkv|webm)."""
    if len(videos) == 1 and video_io.is_video(out) and not os.path.isdir(out):
        if out.lower().endswith(".avi"):
            raise MenetError(f"{out}: menet-tf does not write AVI (it cannot hold H.264's"
                             " timestamps); name the output .mp4, .mkv or .webm")
        return [(out, video_io.container_of(out)[0])]
    from menet_tf.infer.batch import output_names

    containers = [video_io.container_of(source, fmt) for source, _ in videos]
    paths = output_names([rel for _, rel in videos], [ext for _, ext in containers], out)
    return [(path, muxer) for path, (muxer, _) in zip(paths, containers)]


def refuse(videos, targets, force):
    """Before anything runs, as for photos: an output that is an input is refused whatever the
    flags, an existing output unless ``force``; the output folders are made."""
    from menet_tf.infer.batch import make_folders, refuse_inputs, refuse_overwrite

    refuse_inputs(videos, targets)
    if not force:
        refuse_overwrite(targets)
    make_folders(targets)


def derain_videos(derainer, videos, targets, *, progress=True, **options):
    """De-rain each clip into its target; a clip that fails is one line and the others go on.

    Returns {"videos": count, "written": [paths], "failed": [(path, message)], "clips":
    [records]}. An interrupt removes the clip in progress (it was under its temporary name),
    says which clips were kept, and is raised again.
    """
    from menet_tf.infer.video import derain_video

    written, failed, clips = [], [], []
    for (source, _), (target, muxer) in zip(videos, targets):
        try:
            record = derain_video(derainer, source, target, fmt=muxer, force=True,
                                  progress=progress, **options)
        except DataError as err:
            failed.append((source, str(err)))
            print(f"skipped: {err}")
            continue
        except KeyboardInterrupt:
            kept = f"; kept the {len(written)} finished: {', '.join(written)}" if written else ""
            print(f"interrupted while de-raining {source}: its output was not written (the"
                  f" partial file was removed){kept}")
            raise
        written.append(target)
        clips.append(record)
        if record["streams_dropped"]:
            print(f"  {target}: dropped {', '.join(record['streams_dropped'])} (the"
                  f" {muxer} container cannot hold them)")
    return {"videos": len(videos), "written": written, "failed": failed, "clips": clips}
