# ruff: noqa: E501  (a data table: one published row per line)
"""NAB's published results of the scoreboard leaders, for scale on a partial corpus.

NAB (numenta/NAB, MIT) publishes, per detector and profile, the raw score of every
file at the threshold that detector optimised on the full 58-file corpus
(`results/<detector>/<detector>_<profile>_scores.csv`). Summed over the files a
corpus holds and normalised with the same null/perfect rule as our harness, they
say what the leaders score on that corpus. Two caveats the report repeats: their
thresholds were chosen on all 58 files, not on these; and the figures are theirs,
not re-run here. Only files listed below count; a corpus holding any other file
gets no published figure (None), rather than a partial sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bench.nab.scoring import PROFILES
from bench.nab.sweep import normalise

__all__ = ["PUBLISHED_RAW", "published_scores"]

# detector -> file -> (standard raw, reward_low_FP_rate raw): NAB's results CSVs, the
# files of ../shared/data/nab (numenta: HTM, 70.5 / 62.6 on all 58 files; ARTime: 74.9 / 65.1)
PUBLISHED_RAW: Mapping[str, Mapping[str, tuple[float, float]]] = {
    "numenta": {
        "artificialNoAnomaly/art_daily_no_noise.csv": (0.0, 0.0),
        "artificialNoAnomaly/art_daily_perfect_square_wave.csv": (0.0, 0.0),
        "artificialNoAnomaly/art_daily_small_noise.csv": (0.0, 0.0),
        "artificialNoAnomaly/art_flatline.csv": (0.0, 0.0),
        "artificialNoAnomaly/art_noisy.csv": (0.0, 0.0),
        "artificialWithAnomaly/art_daily_flatmiddle.csv": (0.441127306693, 0.243318683142),
        "artificialWithAnomaly/art_daily_jumpsdown.csv": (0.748908670438, 0.638908670438),
        "artificialWithAnomaly/art_daily_jumpsup.csv": (0.748908670438, 0.638908670438),
        "artificialWithAnomaly/art_daily_nojump.csv": (-1.0, -1.0),
        "artificialWithAnomaly/art_increase_spike_density.csv": (0.64067182427, 0.42067182427),
        "artificialWithAnomaly/art_load_balancer_spikes.csv": (0.734788146524, 0.514788146524),
        "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv": (1.38603136566, 1.05603136566),
        "realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv": (1.30436980287, 0.980976840312),
        "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv": (1.71603136566, 1.71603136566),
        "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv": (0.807346411729, 0.6294778738),
        "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv": (0.955724313387, 0.955724313387),
        "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv": (0.875727409493, 0.875727409493),
        "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv": (-0.44, -0.88),
        "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv": (-1.12276900965, -1.12276900965),
        "realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv": (0.812120284598, 0.890364385329),
        "realAWSCloudwatch/ec2_disk_write_bytes_c0d644.csv": (0.500694258181, 0.422209837387),
        "realAWSCloudwatch/ec2_network_in_257a54.csv": (0.855326299622, 0.855326299622),
        "realAWSCloudwatch/ec2_network_in_5abac7.csv": (-0.319713520491, -0.539713520491),
        "realAWSCloudwatch/elb_request_count_8c0756.csv": (1.70512381098, 1.70512381098),
        "realAWSCloudwatch/grok_asg_anomaly.csv": (2.08958039129, 1.47982094922),
        "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv": (-2.11, -2.22),
        "realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv": (-0.141984317169, -0.141984317169),
        "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv": (1.71242101575, 1.71242101575),
        "realKnownCause/ambient_temperature_system_failure.csv": (1.32263476448, 0.882634764484),
        "realKnownCause/cpu_utilization_asg_misconfiguration.csv": (-0.573048875912, -2.11304887591),
        "realKnownCause/ec2_request_latency_system_failure.csv": (1.98538099556, 1.98538099556),
        "realKnownCause/machine_temperature_system_failure.csv": (2.89321665609, 2.3432683899),
        "realKnownCause/nyc_taxi.csv": (2.34189230683, 2.12189230683),
        "realKnownCause/rogue_agent_key_hold.csv": (-0.867400232622, -0.867400232622),
        "realKnownCause/rogue_agent_key_updown.csv": (-1.18575982814, -1.74511219487),
    },
    "ARTime": {
        "artificialNoAnomaly/art_daily_no_noise.csv": (-0.11, -0.22),
        "artificialNoAnomaly/art_daily_perfect_square_wave.csv": (0.0, 0.0),
        "artificialNoAnomaly/art_daily_small_noise.csv": (0.0, 0.0),
        "artificialNoAnomaly/art_flatline.csv": (0.0, 0.0),
        "artificialNoAnomaly/art_noisy.csv": (0.0, 0.0),
        "artificialWithAnomaly/art_daily_flatmiddle.csv": (0.8039739326751801, 0.7544410985057226),
        "artificialWithAnomaly/art_daily_jumpsdown.csv": (0.9934530536103384, 0.8589086704377245),
        "artificialWithAnomaly/art_daily_jumpsup.csv": (0.8589086704377245, 0.8589086704377245),
        "artificialWithAnomaly/art_daily_nojump.csv": (-1.11, -1.22),
        "artificialWithAnomaly/art_increase_spike_density.csv": (0.846035950698122, 0.846035950698122),
        "artificialWithAnomaly/art_load_balancer_spikes.csv": (0.0493832824805146, -0.8306167175194854),
        "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv": (1.6316790938898516, 1.5216790938898517),
        "realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv": (0.39804175935835506, -0.04175767720246226),
        "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv": (1.6976723158532012, 1.6976723158532012),
        "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv": (0.25006277563507817, -0.4940553818938034),
        "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv": (0.819554525214459, 0.6850457149420563),
        "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv": (0.624212199857215, 0.37755621870561307),
        "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv": (-0.11, -0.22),
        "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv": (-0.3338123387023829, -1.3223779892505907),
        "realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv": (0.46730245349086535, 0.00348653030927637),
        "realAWSCloudwatch/ec2_disk_write_bytes_c0d644.csv": (0.2810634605635003, -0.3327782063433372),
        "realAWSCloudwatch/ec2_network_in_257a54.csv": (0.7648520127677702, 0.679893811480864),
        "realAWSCloudwatch/ec2_network_in_5abac7.csv": (1.0348311473992204, 0.27055356254207175),
        "realAWSCloudwatch/elb_request_count_8c0756.csv": (1.3635913854419892, 1.0335913854419891),
        "realAWSCloudwatch/grok_asg_anomaly.csv": (2.230665583083, 1.7906655830829998),
        "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv": (-2.33, -2.66),
        "realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv": (1.4900140859924367, 1.2715235321219427),
        "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv": (1.405996220856109, 1.1143201258590167),
        "realKnownCause/ambient_temperature_system_failure.csv": (1.6577326504395065, 1.5477451079123843),
        "realKnownCause/cpu_utilization_asg_misconfiguration.csv": (-0.257470331859453, -1.4674703318594533),
        "realKnownCause/ec2_request_latency_system_failure.csv": (1.3905835377463662, 0.9678570007805122),
        "realKnownCause/machine_temperature_system_failure.csv": (2.5563301921824606, 1.5184273798792873),
        "realKnownCause/nyc_taxi.csv": (3.775210013719179, 3.445210013719179),
        "realKnownCause/rogue_agent_key_hold.csv": (-1.280892312855327, -2.050891492994684),
        "realKnownCause/rogue_agent_key_updown.csv": (-2.567650916046798, -3.1353018320935964),
    },
}


def published_scores(
    files: Iterable[str], windows: int
) -> dict[str, dict[str, float]] | None:
    """Per leader, {profile name: normalised score} over `files` with `windows` scored
    windows (null = -windows, perfect = +windows, as `bench.nab.sweep` has them for NAB's
    unit weights); None when a file has no published row."""
    keys = list(files)
    if windows <= 0 or any(k not in table for table in PUBLISHED_RAW.values() for k in keys):
        return None
    out: dict[str, dict[str, float]] = {}
    for name, table in PUBLISHED_RAW.items():
        out[name] = {
            profile.name: normalise(sum(table[k][i] for k in keys), -float(windows), float(windows))
            for i, profile in enumerate(PROFILES)
        }
    return out
