"""fuse_multimodal and slerp against per-stream float64 references (plain loop, SciPy's Slerp), on the CPU
and CUDA, and on the real multi-rate recordings in ../shared/data/multirate."""

import numpy as np
import pytest

import robocache as rc
from conftest import requires_cuda, requires_torch, shared_data, torch
from resample_reference import resample_reference
from test_resample import as_f64, assert_close, jittered_times, targets_around, without_exchange_api

transform = pytest.importorskip("scipy.spatial.transform")
Rotation, Slerp = transform.Rotation, transform.Slerp


def same_rotation(got, want, atol=1e-9):
    """Quaternions q and -q are one rotation: compare |<got, want>| with 1, and unit norm."""
    got = as_f64(got).reshape(-1, 4)
    want = np.asarray(want, dtype=np.float64).reshape(-1, 4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=atol)
    dots = np.abs(np.sum(got * want, axis=1) / np.linalg.norm(want, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=atol)


def scipy_slerp(src_t, q_xyzw, tgt_t):
    return Slerp(src_t, Rotation.from_quat(q_xyzw))(tgt_t).as_quat()


def distinct_times(rng, S):
    return np.cumsum(rng.uniform(0.01, 0.1, S))


# ---------------------------------------------------------------- slerp


@pytest.mark.parametrize("layout", ["xyzw", "wxyz"])
def test_slerp_matches_scipy_on_random_rotations(rng, layout):
    S, T = 60, 300
    src_t = distinct_times(rng, S)
    q = Rotation.random(S, random_state=rng.integers(1 << 31)).as_quat()  # xyzw
    flip = rng.random(S) < 0.5
    q[flip] *= -1  # q and -q: the same rotations, so slerp must take the shortest arc
    tgt_t = rng.uniform(src_t[0], src_t[-1], T)
    want = scipy_slerp(src_t, q, tgt_t)
    data = q if layout == "xyzw" else q[:, [3, 0, 1, 2]]
    out = rc.resample_rotations(data, src_t, tgt_t)
    if layout == "wxyz":
        out = out[:, [1, 2, 3, 0]]
    same_rotation(out, want)


def test_slerp_antipodal_and_near_identical_pairs(rng):
    base = Rotation.random(20, random_state=7).as_quat()
    tiny = Rotation.from_rotvec(rng.normal(size=(20, 3)) * 1e-7)
    near = (tiny * Rotation.from_quat(base)).as_quat()
    cases = [(base, -base), (base, near), (base, -near)]
    for q0, q1 in cases:
        for i in range(20):
            src_t = np.array([0.0, 1.0])
            quats = np.stack([q0[i], q1[i]])
            tgt_t = np.array([0.0, 0.25, 0.5, 0.9, 1.0])
            out = rc.resample_rotations(quats, src_t, tgt_t)
            same_rotation(out, scipy_slerp(src_t, quats, tgt_t), atol=1e-12)


def test_slerp_normalizes_and_extrapolates_along_the_arc():
    # 90 degrees about z per second, given with non-unit norms.
    q0 = np.array([0.0, 0.0, 0.0, 1.0]) * 3.0
    q1 = np.array([0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)]) * 0.5
    out = rc.resample_rotations(np.stack([q0, q1]), np.array([0.0, 1.0]), np.array([-1.0, 0.5, 2.0]),
                                boundary="extrapolate")
    want = Rotation.from_rotvec(np.array([[0, 0, -np.pi / 2], [0, 0, np.pi / 4], [0, 0, np.pi]])).as_quat()
    same_rotation(out, want, atol=1e-12)
    clamped = rc.resample_rotations(np.stack([q0, q1]), np.array([0.0, 1.0]), np.array([-1.0, 2.0]))
    same_rotation(clamped, [q0 / 3.0, q1 / 0.5], atol=1e-12)


@pytest.mark.parametrize("dtype,atol", [("float64", 1e-12), ("float32", 2e-6)])
def test_mixed_position_and_quaternion_stream(rng, dtype, atol):
    B, S, T = 3, 40, 77
    src_t = np.stack([distinct_times(rng, S) for _ in range(B)])
    tgt_t = targets_around(rng, src_t, T)
    pos = rng.uniform(-1, 1, (B, S, 3))
    quat = np.stack([Rotation.random(S, random_state=b).as_quat() for b in range(B)])
    grip = rng.uniform(0, 1, (B, S, 1))
    data = np.concatenate([pos, quat, grip], axis=2).astype(dtype)
    out, mask = rc.resample_trajectories(data, src_t, tgt_t, method="slerp", quat_channel=3, return_mask=True)
    lin, _ = resample_reference(data, src_t, tgt_t, "linear", "clamp")
    assert_close(out[..., [0, 1, 2, 7]], lin[..., [0, 1, 2, 7]], atol / 10)
    for b in range(B):
        t = np.clip(tgt_t[b], src_t[b, 0], src_t[b, -1])
        same_rotation(out[b, :, 3:7], scipy_slerp(src_t[b], data[b, :, 3:7].astype(np.float64), t), atol=atol * 10)


def test_slerp_bad_channels_are_named():
    with pytest.raises(ValueError, match=r"method='slerp' needs D = 4 quaternion channels .* D = 7"):
        rc.resample_trajectories(np.zeros((5, 7)), np.arange(5.0), np.array([1.5]), method="slerp")
    with pytest.raises(ValueError, match=r"quat_channel = 5 names channels 5..8 but data has D = 7"):
        rc.resample_trajectories(np.zeros((5, 7)), np.arange(5.0), np.array([1.5]), method="slerp", quat_channel=5)
    with pytest.raises(ValueError, match=r"quat_channel = 0 is only for method='slerp', got method='linear'"):
        rc.resample_trajectories(np.zeros((5, 7)), np.arange(5.0), np.array([1.5]), quat_channel=0)
    with pytest.raises(TypeError, match="always uses method='slerp'"):
        rc.resample_rotations(np.zeros((5, 4)), np.arange(5.0), np.array([1.5]), method="linear")


# ---------------------------------------------------------------- alignment


def three_streams(rng, B=4, float_dtype="float32"):
    """A 30 Hz camera feature, 100-500 Hz joints and a 1 kHz force stream, each with its own clock."""
    cam_t = jittered_times(rng, B, 31, scale=1 / 1.5)
    joint_t = jittered_times(rng, 1, 157, scale=1 / 5)[0]  # shared [S] clock
    force_t = jittered_times(rng, B, 409, scale=1 / 25).astype(np.float32)  # float32 stream times
    return {
        "camera": (rng.normal(size=(B, 31, 9)).astype(float_dtype), cam_t),
        "joints": (rng.normal(size=(B, 157, 7)).astype(float_dtype), joint_t, rng.integers(100, 158, B)),
        "force": (rng.normal(size=(B, 409, 6)).astype(float_dtype), force_t),
    }


def reference_streams(streams, tgt_t, methods, boundary):
    out = {}
    for name, entry in streams.items():
        data, t = entry[0], entry[1]
        lengths = entry[2] if len(entry) > 2 else None
        out[name] = resample_reference(data, t, tgt_t, methods.get(name, "linear"), boundary, src_lengths=lengths)
    return out


@pytest.mark.parametrize("boundary", ["clamp", "extrapolate", "nan"])
def test_fuse_matches_per_stream_reference(rng, boundary):
    streams = three_streams(rng)
    tgt_t = np.tile(np.linspace(-0.1, 1.6, 128), (4, 1))
    methods = {"camera": "hold", "joints": "linear", "force": "nearest"}
    fused, masks = rc.fuse_multimodal(streams, tgt_t, methods=methods, boundary=boundary, return_mask=True)
    ref = reference_streams(streams, tgt_t, methods, boundary)
    assert fused.shape == (4, 128, 9 + 7 + 6) and fused.dtype == np.float32
    off = 0
    for name, (want, want_mask) in ref.items():
        D = want.shape[-1]
        assert_close(fused[..., off:off + D], want, 2e-6 if methods[name] == "linear" else 0.0, name)
        np.testing.assert_array_equal(masks[name], want_mask)
        off += D


def test_fuse_per_stream_output_keeps_each_dtype(rng):
    streams = three_streams(rng)
    streams["camera"] = (streams["camera"][0].astype(np.float64), streams["camera"][1])
    tgt_t = np.linspace(0.0, 1.5, 50)
    with pytest.raises(TypeError, match=r"concat=True needs one dtype for all streams"):
        rc.fuse_multimodal(streams, tgt_t)
    out = rc.fuse_multimodal(streams, tgt_t, concat=False)
    assert set(out) == set(streams) and out["camera"].dtype == np.float64 and out["force"].dtype == np.float32
    ref = reference_streams(streams, tgt_t, {}, "clamp")
    for name in streams:
        assert_close(out[name], ref[name][0], 1e-12 if name == "camera" else 2e-6, name)


def test_fuse_sequence_input_int64_clocks_and_slerp_stream(rng):
    B, T = 2, 64
    ns = 1_700_000_000_000_000_000
    imu_t = ns + np.cumsum(rng.integers(4_000_000, 6_000_000, (B, 300)), axis=1)
    att_t = ns + np.cumsum(rng.integers(9_000_000, 11_000_000, (B, 150)), axis=1)
    quat = np.stack([Rotation.random(150, random_state=b).as_quat() for b in range(B)])
    imu = rng.normal(size=(B, 300, 6))
    tgt_t = ns + np.tile(np.linspace(5e7, 1.2e9, T).astype(np.int64), (B, 1))
    out = rc.fuse_multimodal([(imu, imu_t), (quat, att_t)], tgt_t, methods=["linear", "slerp"], concat=False)
    want_imu, _ = resample_reference(imu, imu_t - ns, tgt_t - ns)
    assert_close(out[0], want_imu, 1e-12)
    for b in range(B):
        t = np.clip(tgt_t[b], att_t[b, 0], att_t[b, -1])
        same_rotation(out[1][b], scipy_slerp((att_t[b] - ns) * 1e-9, quat[b], (t - ns) * 1e-9), atol=1e-9)


def test_fuse_errors_name_the_stream(rng):
    streams = three_streams(rng)
    bad_t = streams["camera"][1].copy()
    bad_t[2, 5] = bad_t[2, 4] - 1.0
    streams["camera"] = (streams["camera"][0], bad_t)
    with pytest.raises(ValueError, match=r"stream 'camera': src_t must be non-decreasing: src_t\[2, 5\]"):
        rc.fuse_multimodal(streams, np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match=r"stream 'force': method must be"):
        rc.fuse_multimodal(three_streams(rng), np.linspace(0, 1, 10), methods={"force": "cubic"})
    with pytest.raises(ValueError, match=r"methods names unknown streams \['imu'\]"):
        rc.fuse_multimodal(three_streams(rng), np.linspace(0, 1, 10), methods={"imu": "hold"})
    s = three_streams(rng)
    s["joints"] = (s["joints"][0], s["joints"][1], np.array([1, 2, 3, 999]))
    with pytest.raises(ValueError, match=r"stream 'joints': src_lengths\[3\] = 999 is out of range"):
        rc.fuse_multimodal(s, np.linspace(0, 1, 10))
    s = three_streams(rng)
    s["force"] = (s["force"][0][:2], s["force"][1][:2])
    with pytest.raises(ValueError, match=r"all streams need the same batch size B"):
        rc.fuse_multimodal(s, np.linspace(0, 1, 10))
    s = three_streams(rng)
    s["joints"] = (s["joints"][0], s["joints"][1].astype(np.int64))
    with pytest.raises(TypeError, match=r"stream 'joints': tgt_t dtype \(float64\) must match src_t dtype \(int64\)"):
        rc.fuse_multimodal(s, np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="streams is empty"):
        rc.fuse_multimodal({}, np.linspace(0, 1, 10))


# ---------------------------------------------------------------- real multi-rate recordings


def test_px4_ulog_imu_attitude_gps_onto_50hz():
    pyulog = pytest.importorskip("pyulog")
    log = pyulog.ULog(str(shared_data("multirate", "px4_sample_log_small.ulg")))
    topics = {d.name: d.data for d in log.data_list if d.multi_id == 0}
    imu, att, gps = topics["sensor_combined"], topics["vehicle_attitude"], topics["vehicle_gps_position"]
    imu_t, att_t, gps_t = (np.asarray(x["timestamp"], np.int64) * 1000 for x in (imu, att, gps))  # us -> ns
    imu_v = np.stack([imu[f"accelerometer_m_s2[{i}]"] for i in range(3)] + [imu[f"gyro_rad[{i}]"] for i in range(3)], 1)
    q_wxyz = np.stack([att[f"q[{i}]"] for i in range(4)], 1).astype(np.float64)  # PX4 stores w, x, y, z
    gps_v = np.stack([gps["lat"], gps["lon"], gps["alt"]], 1).astype(np.float64)
    start, stop = max(imu_t[0], att_t[0], gps_t[0]), min(imu_t[-1], att_t[-1], gps_t[-1])
    tgt_t = np.arange(start, stop, 20_000_000, dtype=np.int64)  # 50 Hz
    streams = {"imu": (imu_v.astype(np.float64), imu_t), "attitude": (q_wxyz, att_t), "gps": (gps_v, gps_t)}
    out = rc.fuse_multimodal(streams, tgt_t, methods={"attitude": "slerp", "gps": "hold"}, concat=False)
    want_imu, _ = resample_reference(imu_v, imu_t - start, tgt_t - start)
    assert_close(out["imu"], want_imu, 1e-12)
    want_gps, _ = resample_reference(gps_v, gps_t - start, tgt_t - start, "hold")
    np.testing.assert_array_equal(out["gps"], want_gps)
    rel = lambda t: (t - start) * 1e-9  # noqa: E731
    want_q = scipy_slerp(rel(att_t), q_wxyz[:, [1, 2, 3, 0]], rel(tgt_t))
    same_rotation(out["attitude"][:, [1, 2, 3, 0]], want_q, atol=1e-9)


def test_ros1_bag_imu_and_velocity():
    highlevel = pytest.importorskip("rosbags.highlevel")
    from pathlib import Path

    path = shared_data("multirate", "tilt_laser.bag")
    imu_t, imu_v, imu_q, vel_t, vel_v = [], [], [], [], []
    with highlevel.AnyReader([Path(path)]) as reader:
        for conn, stamp, raw in reader.messages([c for c in reader.connections if c.topic in ("/imu_data", "/velocity")]):
            msg = reader.deserialize(raw, conn.msgtype)
            t = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if conn.topic == "/imu_data":
                imu_t.append(t)
                a, w, q = msg.linear_acceleration, msg.angular_velocity, msg.orientation
                imu_v.append([a.x, a.y, a.z, w.x, w.y, w.z])
                imu_q.append([q.x, q.y, q.z, q.w])
            else:
                vel_t.append(t)
                vel_v.append([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z])
    imu_t, vel_t = np.array(imu_t), np.array(vel_t)
    order_i, order_v = np.argsort(imu_t, kind="stable"), np.argsort(vel_t, kind="stable")
    imu_t, imu_v, imu_q = imu_t[order_i], np.array(imu_v)[order_i], np.array(imu_q)[order_i]
    vel_t, vel_v = vel_t[order_v], np.array(vel_v)[order_v]
    start = max(imu_t[0], vel_t[0])
    tgt_t = np.arange(start, min(imu_t[-1], vel_t[-1]), 20_000_000, dtype=np.int64)
    out = rc.fuse_multimodal({"imu": (imu_v, imu_t), "orientation": (imu_q, imu_t), "velocity": (vel_v, vel_t)},
                             tgt_t, methods={"orientation": "slerp"}, concat=False)
    assert_close(out["imu"], resample_reference(imu_v, imu_t - start, tgt_t - start)[0], 1e-12)
    assert_close(out["velocity"], resample_reference(vel_v, vel_t - start, tgt_t - start)[0], 1e-12)
    uniq = np.concatenate([[True], np.diff(imu_t) > 0])  # SciPy's Slerp needs strictly increasing times
    rel = lambda t: (t - start) * 1e-9  # noqa: E731
    same_rotation(out["orientation"], scipy_slerp(rel(imu_t[uniq]), imu_q[uniq], rel(tgt_t)), atol=1e-9)


# ---------------------------------------------------------------- torch tensors, either route
# With PyTorch's DLPack exchange API the native module reads the tensors and allocates the results; without it
# (PyTorch < 2.10) the wrapper allocates them and passes descriptors.


def torch_streams(streams, device="cpu"):
    return {k: tuple(torch.from_numpy(np.asarray(x)).to(device) for x in v) for k, v in streams.items()}


@requires_torch
@pytest.mark.parametrize("route", ["exchange", "descriptors"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_fuse_either_route_gives_the_reference(route, device, monkeypatch, rng):
    if device == "cuda" and (torch is None or not torch.cuda.is_available()):
        pytest.skip("no CUDA GPU visible")
    if route == "descriptors":
        without_exchange_api(monkeypatch)
    streams = three_streams(rng)
    tgt_t = np.sort(rng.uniform(-0.1, 1.6, (4, 45)), axis=1)
    methods = {"camera": "hold", "force": "nearest"}
    ref = reference_streams(streams, tgt_t, methods, "nan")
    ts = torch_streams(streams, device)
    tgt = torch.from_numpy(tgt_t).to(device)
    fused = rc.fuse_multimodal(ts, tgt, methods=methods, boundary="nan")
    assert fused.shape == (4, 45, 22) and fused.dtype == torch.float32 and fused.device == tgt.device
    assert fused.is_contiguous()
    per = rc.fuse_multimodal(list(ts.values()), tgt, methods=list(methods.get(k, "linear") for k in ts),
                             boundary="nan", concat=False)
    assert isinstance(per, list) and [p.shape for p in per] == [(4, 45, 9), (4, 45, 7), (4, 45, 6)]
    off = 0
    for k, (name, (want, _)) in enumerate(ref.items()):
        D = want.shape[-1]
        tol = 2e-6 if methods.get(name, "linear") == "linear" else 0.0
        assert_close(fused[..., off:off + D].cpu(), want, tol, name)
        assert_close(per[k].cpu(), want, tol, name)
        off += D
    # Unbatched streams give [T, sum D]: row 0 of the batched result (without the padded lengths).
    whole = {k: v[:2] for k, v in ts.items()}
    batched = rc.fuse_multimodal(whole, tgt, methods=methods, boundary="nan")
    one = rc.fuse_multimodal({k: (d[0], t[0] if t.ndim == 2 else t) for k, (d, t) in whole.items()}, tgt[0],
                             methods=methods, boundary="nan")
    assert one.shape == (45, 22) and torch.equal(one.cpu().nan_to_num(7.0), batched[0].cpu().nan_to_num(7.0))


@requires_torch
@pytest.mark.parametrize("route", ["exchange", "descriptors"])
def test_torch_fuse_errors_either_route(route, monkeypatch, rng):
    if route == "descriptors":
        without_exchange_api(monkeypatch)
    tgt = torch.linspace(0, 1, 10, dtype=torch.float64)
    s = torch_streams(three_streams(rng))
    s["camera"] = (s["camera"][0].double(), s["camera"][1])
    with pytest.raises(TypeError, match=r"concat=True needs one dtype for all streams, got \['torch.float32', "
                                        r"'torch.float64'\]"):
        rc.fuse_multimodal(s, tgt)
    assert rc.fuse_multimodal(s, tgt, concat=False)["camera"].dtype == torch.float64
    s = torch_streams(three_streams(rng))
    s["force"] = (s["force"][0][:2], s["force"][1][:2])
    with pytest.raises(ValueError, match=r"stream 'force' has data of shape \[2, 409, 6\] but stream 'camera' has "
                                         r"\[4, 31, 9\]; all streams need the same batch size B"):
        rc.fuse_multimodal(s, tgt)
    s = torch_streams(three_streams(rng))
    with pytest.raises(ValueError, match=r"tgt_t must have shape \[B, T\] or \[T\], got \[1, 2, 5\]"):
        rc.fuse_multimodal(s, tgt.reshape(1, 2, 5))
    bad = s["camera"][1].clone()
    bad[2, 5] = bad[2, 4] - 1.0
    s["camera"] = (s["camera"][0], bad)
    with pytest.raises(ValueError, match=r"stream 'camera': src_t must be non-decreasing: src_t\[2, 5\]"):
        rc.fuse_multimodal(s, tgt)
    s = torch_streams(three_streams(rng))
    s["joints"] = (s["joints"][0], s["joints"][1], torch.tensor([1, 2, 3, 999]))
    with pytest.raises(ValueError, match=r"stream 'joints': src_lengths\[3\] = 999 is out of range"):
        rc.fuse_multimodal(s, tgt)
    with pytest.raises(ValueError, match=r"stream 'force': method must be"):
        rc.fuse_multimodal(torch_streams(three_streams(rng)), tgt, methods={"force": "cubic"})


@requires_cuda
@pytest.mark.parametrize("route", ["exchange", "descriptors"])
def test_cuda_fuse_runs_on_the_current_torch_stream(route, monkeypatch, rng):
    if route == "descriptors":
        without_exchange_api(monkeypatch)
    streams = {k: (d.repeat(16, 1, 1), t.repeat(16, 1) if t.ndim == 2 else t)
               for k, (d, t, *_) in torch_streams(three_streams(rng), "cuda").items()}
    tgt = torch.linspace(0.0, 1.5, 300, dtype=torch.float64, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # keep the side stream busy: a default-stream launch would race ahead
        for d, _ in streams.values():
            d.mul_(2.0)
        out = rc.fuse_multimodal(streams, tgt)
    torch.cuda.current_stream().wait_stream(side)
    want = rc.fuse_multimodal({k: (d.cpu(), t.cpu()) for k, (d, t) in streams.items()}, tgt.cpu())
    assert_close(out, as_f64(want), 0.0)


# ---------------------------------------------------------------- CUDA == CPU


@requires_cuda
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_cuda_fuse_matches_cpu(rng, dtype):
    streams = three_streams(rng, B=5)
    tdt = getattr(torch, dtype)
    cpu_streams = {k: (v[0].to(tdt),) + v[1:] for k, v in torch_streams(streams).items()}
    gpu_streams = {k: tuple(x.cuda() for x in v) for k, v in cpu_streams.items()}
    tgt = torch.linspace(-0.1, 1.6, 200, dtype=torch.float64)
    methods = {"camera": "hold", "joints": "linear", "force": "nearest"}
    for boundary in ["clamp", "extrapolate", "nan"]:
        kw = dict(methods=methods, boundary=boundary, return_mask=True)
        cpu, cm = rc.fuse_multimodal(cpu_streams, tgt, **kw)
        gpu, gm = rc.fuse_multimodal(gpu_streams, tgt.cuda(), **kw)
        assert gpu.device.type == "cuda"
        assert_close(gpu, as_f64(cpu), 0.0, boundary)
        for k in cm:
            assert torch.equal(gm[k].cpu(), cm[k])


@requires_cuda
def test_cuda_slerp_matches_cpu(rng):
    B, S, T = 6, 90, 333
    src_t = torch.from_numpy(np.stack([distinct_times(rng, S) for _ in range(B)]))
    quat = torch.from_numpy(np.stack([Rotation.random(S, random_state=b).as_quat() for b in range(B)]))
    data = torch.cat([torch.randn(B, S, 3, dtype=torch.float64), quat], 2)
    tgt = torch.from_numpy(targets_around(rng, src_t.numpy(), T))
    for dtype, tol in [(torch.float64, 1e-12), (torch.float32, 1e-6)]:
        for boundary in ["clamp", "extrapolate", "nan"]:
            cpu = rc.resample_trajectories(data.to(dtype), src_t, tgt, method="slerp", quat_channel=3, boundary=boundary)
            gpu = rc.resample_trajectories(data.to(dtype).cuda(), src_t.cuda(), tgt.cuda(), method="slerp",
                                           quat_channel=3, boundary=boundary)
            # sin/atan2 of CUDA's libm and glibc may differ in the last bit
            assert_close(gpu, as_f64(cpu), tol / 10, f"{dtype} {boundary}")


@requires_cuda
def test_cuda_fuse_errors_name_the_stream(rng):
    g = torch_streams(three_streams(rng), "cuda")
    bad = g["force"][1].clone()
    bad[1, 7] = float("nan")
    g["force"] = (g["force"][0], bad)
    with pytest.raises(ValueError, match=r"stream 'force': src_t must not contain NaN: src_t\[1, 7\]"):
        rc.fuse_multimodal(g, torch.linspace(0, 1, 10, dtype=torch.float64, device="cuda"))


def many_streams(rng, B=7, dtype="float32"):
    """Ten streams (more than one launch holds): vector-friendly and odd widths, float32 and float64 clocks,
    a transposed (non-unit D stride) stream, padded lengths, a position + quaternion stream."""
    spec = [(40, 8), (13, 1), (211, 16), (57, 7), (9, 3), (300, 4), (77, 12), (5, 2), (123, 5), (64, 32)]
    streams = {}
    for k, (S, D) in enumerate(spec):
        t = jittered_times(rng, B, S, scale=1.3 / S)
        if k % 3 == 1:
            t = t.astype(np.float32)
        data = torch.from_numpy(rng.normal(size=(B, S, D)).astype(np.float32))
        if k == 3:  # position + unit quaternion in channels 3..6
            q = Rotation.random(B * S, random_state=k).as_quat().reshape(B, S, 4)
            data[..., 3:7] = torch.from_numpy(q.astype(np.float32))
        data = data.to(getattr(torch, dtype))
        if k == 6:  # a [B, S, D] view of a [B, D, S] tensor
            data = data.transpose(1, 2).contiguous().transpose(1, 2)
        entry = (data, torch.from_numpy(t))
        if k in (2, 8):
            entry += (torch.from_numpy(rng.integers(1, S + 1, B)),)
        streams[f"s{k}"] = entry
    methods = {"s0": "hold", "s3": "slerp", "s4": "nearest", "s7": "hold"}
    return streams, methods, {"s3": 3}


@requires_cuda
@pytest.mark.parametrize("boundary", ["clamp", "extrapolate", "nan"])
@pytest.mark.parametrize("concat,dtype", [(False, "float32"), (True, "float32"), (True, "bfloat16"), (True, "float64")])
@pytest.mark.parametrize("slerp", [True, False])
def test_cuda_fuse_ten_mixed_streams_matches_cpu(rng, boundary, concat, dtype, slerp):
    # Concatenated, most streams sit at output offsets that are not 16-byte aligned (the CUDA kernel's
    # 16-byte loads with element stores), for 8-, 4- and 2-element vectors. A launch takes the streams of one
    # (data dtype, clock dtypes) group: in float32 / bfloat16 the float32-clock group (s1, s4, s7) runs the lean
    # kernel; the float64-clock group runs the general one with the slerp stream, the lean one without it.
    streams, methods, quats = many_streams(rng, dtype=dtype)
    if not slerp:
        methods, quats = {**methods, "s3": "linear"}, {}
    tgt = torch.from_numpy(np.sort(rng.uniform(-0.2, 1.5, (7, 37)), axis=1))  # T = 37: tiles span rows
    kw = dict(methods=methods, quat_channels=quats, boundary=boundary, return_mask=True, concat=concat)
    cpu, cm = rc.fuse_multimodal(streams, tgt, **kw)
    gpu, gm = rc.fuse_multimodal({k: tuple(x.cuda() for x in v) for k, v in streams.items()}, tgt.cuda(), **kw)
    if concat:
        widths = np.cumsum([0] + [v[0].shape[-1] for v in streams.values()])
        cpu = {k: cpu[..., widths[i]:widths[i + 1]] for i, k in enumerate(streams)}
        gpu = {k: gpu[..., widths[i]:widths[i + 1]] for i, k in enumerate(streams)}
    for k in cpu:
        if k == "s3":  # slerp: CUDA's and glibc's sin/atan2 may differ in the last bit (of bfloat16 too)
            assert_close(gpu[k], as_f64(cpu[k]), 1e-2 if dtype == "bfloat16" else 1e-6, f"{k} {boundary}")
        else:
            assert_close(gpu[k], as_f64(cpu[k]), 0.0, f"{k} {boundary}")
        assert torch.equal(gm[k].cpu(), cm[k]), k


@requires_cuda
def test_cuda_fuse_reports_the_first_bad_stream_across_clock_dtypes(rng):
    streams, methods, quats = many_streams(rng)
    g = {k: tuple(x.cuda() for x in v) for k, v in streams.items()}
    for name, (b, i) in [("s4", (2, 5)), ("s1", (3, 4))]:  # s1 has float32 clocks, s4 float64
        bad = g[name][1].clone()
        bad[b, i] = bad[b, i - 1] - 1
        g[name] = (g[name][0], bad) + g[name][2:]
    tgt = torch.linspace(0, 1, 10, dtype=torch.float64, device="cuda")
    with pytest.raises(ValueError, match=r"stream 's1': src_t must be non-decreasing: src_t\[3, 4\]"):
        rc.fuse_multimodal(g, tgt, methods=methods, quat_channels=quats)
