"""The scenario catalogue of `honeyatlas simulate`: the shape of the noise and what is planted.

A scenario fixes the planted entities (how many of each plant) and the default size of the
background; `--sensors`, `--rate` and `--duration-seconds` change the background around the
same plants. The plants that need more time than the trace has (`*_spread` near misses) are
left out, and the truth says so by not listing them.
"""

from __future__ import annotations

import msgspec

# What each plant is. Positives must open the incidents the truth lists; near misses
# (`near_*`) must not open the incident they come close to.
PLANTS: dict[str, str] = {
    "multi_sensor": "one source logs in at k to k+2 sensors, one after the other, all within the window",
    "horizontal_scan": "one source probes one port (with overlap: two ports, or also a vertical sweep of one of "
    "the sensors) on S to S+6 sensors within the scan window; also a multi-sensor attacker",
    "vertical_scan": "one source probes P to P+30 ports of one sensor (with overlap: of two sensors) within the "
    "scan window",
    "campaign_credentials": "C to C+7 sources, one session each, try the same credential list in different orders",
    "campaign_commands": "C to C+7 sources run the same first commands (spacing varies; whitespace is collapsed) and "
    "fetch files from one host: two campaigns (a command sequence is a weak key, opened by the host it shares)",
    "campaign_download_host": "C to C+7 sources make sensors fetch different files from one host",
    "campaign_client_version": "C to C+7 sources connect with one uncommon SSH client banner and run the same first "
    "commands: two weak keys, each the other's second key, two campaigns",
    "botnet": "C to C+7 sources share a banner, a credential list, a command sequence and a download host and drop "
    "one sample: four campaigns and, once the sample is at E sensors, an epidemic; with overlap some members "
    "also roam k sensors (multi-sensor attackers)",
    "research_scanner": "a research scanner: one source of 162.142.125.0/24 probes ports 22, 80 and 443 of every "
    "sensor within a minute: horizontal scans, and a multi-sensor attacker unless correlation.benign_networks "
    "lists its network (then a near miss)",
    "epidemic": "one sample reaches E to E+8 sensors, one new delivering source per sensor, spreading over hours",
    "near_multi_sensor": "negative: one busy source at k-1 sensors",
    "near_multi_sensor_spread": "negative: one source visits k sensors, spaced so that no k fall within the window",
    "near_vertical_scan": "negative: one source probes P-1 ports of one sensor",
    "near_horizontal_scan": "negative for horizontal_scan: one port on S-1 sensors (a multi-sensor attacker when "
    "S-1 >= k)",
    "near_campaign": "negative: C-1 sources share a fingerprint",
    "near_campaign_spread": "negative: C sources share a fingerprint, spaced so that no C fall within the window",
    "near_campaign_weak": "negative: C to C+7 sources share one uncommon banner or one command sequence and nothing "
    "else: a weak key alone opens no campaign",
    "near_epidemic": "negative: one sample at E-1 sensors",
    "near_epidemic_spread": "negative: one sample at E sensors, spaced so that no E fall within the window",
}

NOISE_ACTORS = {
    "bot": "realistic SSH bot: a library banner (SSH-2.0-Go, libssh, paramiko, ...), 2-8 pairs of a common "
    "dictionary in random order or a Mirai list in its order, on success a common recon set and sometimes a file "
    "from a public host (raw.githubusercontent.com, pastebin.com, ...)",
    "ssh": "banner (stock OpenSSH/PuTTY), 1-8 login attempts, rarely a shell with a few commands and a download",
    "telnet": "1-4 login attempts, rarely a few commands",
    "web": "1-4 HTTP requests for common paths",
    "probe": "a SYN to one or two common ports",
}


class Scenario(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    sensors: int
    rate_events_per_second: float  # background events per second of event time, on average
    duration_seconds: float
    plants: dict[str, int]
    noise_mix: dict[str, float]  # NOISE_ACTORS -> weight
    return_probability: float = 0.25  # a background source comes back for another session (at most twice)
    overlap: float = 0.0  # share of scanners and botnet members that do two things at once
    epidemic_spread_seconds: tuple[float, float] = (1200.0, 5400.0)  # first to last sensor
    campaign_spread_share: tuple[float, float] = (0.1, 0.6)  # first to last member, share of the window
    campaign_members: tuple[int, int] | None = None  # sources of a planted campaign; None: C to C+7
    warmup_seconds: float = 0.0  # background only before this: what the detectors learn from first


_MIX = {"ssh": 0.45, "telnet": 0.15, "web": 0.2, "probe": 0.2}
_REALISTIC_MIX = {"bot": 0.45, "ssh": 0.05, "telnet": 0.1, "web": 0.2, "probe": 0.2}

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            name="baseline",
            description="20 sensors, two hours, moderate background; a few of every plant, spread out",
            sensors=20, rate_events_per_second=10.0, duration_seconds=7200.0, noise_mix=_MIX,
            plants={
                "multi_sensor": 20, "horizontal_scan": 10, "vertical_scan": 10, "campaign_credentials": 5,
                "campaign_commands": 5, "campaign_download_host": 5, "campaign_client_version": 5, "epidemic": 8,
                "near_multi_sensor": 5, "near_multi_sensor_spread": 5, "near_vertical_scan": 5,
                "near_horizontal_scan": 5, "near_campaign": 5, "near_campaign_spread": 3, "near_campaign_weak": 4,
                "near_epidemic": 5,
            },
        ),
        Scenario(
            name="dense",
            description="60 sensors, one hour, heavy background; many plants at once, scanners that also sweep "
            "a second port or sensor, botnets that are four campaigns and an epidemic",
            sensors=60, rate_events_per_second=40.0, duration_seconds=3600.0, noise_mix=_MIX, overlap=0.4,
            epidemic_spread_seconds=(600.0, 2700.0),
            plants={
                "multi_sensor": 60, "horizontal_scan": 30, "vertical_scan": 30, "campaign_credentials": 8,
                "campaign_commands": 8, "campaign_download_host": 8, "campaign_client_version": 8, "botnet": 6,
                "epidemic": 15, "near_multi_sensor": 10, "near_multi_sensor_spread": 10, "near_vertical_scan": 10,
                "near_horizontal_scan": 10, "near_campaign": 10, "near_campaign_weak": 6, "near_epidemic": 10,
            },
        ),
        Scenario(
            name="slow-epidemic",
            description="16 sensors, ten days, a trickle of background; campaigns, botnets and samples that "
            "spread over hours to days dominate",
            sensors=16, rate_events_per_second=0.1, duration_seconds=10 * 86400.0, noise_mix=_MIX, overlap=0.2,
            epidemic_spread_seconds=(6 * 3600.0, 5 * 86400.0), campaign_spread_share=(0.2, 0.8),
            plants={
                "multi_sensor": 5, "horizontal_scan": 5, "vertical_scan": 5, "campaign_credentials": 6,
                "campaign_commands": 6, "campaign_download_host": 6, "campaign_client_version": 6, "botnet": 10,
                "epidemic": 30, "near_multi_sensor": 3, "near_multi_sensor_spread": 3, "near_vertical_scan": 3,
                "near_horizontal_scan": 3, "near_campaign": 6, "near_campaign_spread": 4, "near_campaign_weak": 4,
                "near_epidemic": 10,
                "near_epidemic_spread": 5,
            },
        ),
        Scenario(
            name="realistic",
            description="20 sensors, three hours, a background of SSH bots that share library banners, dictionary "
            "credentials, Mirai lists, recon commands and public download hosts, and research scanners at every "
            "sensor; planted campaigns of 8-15 sources after the first hour",
            sensors=20, rate_events_per_second=6.0, duration_seconds=3 * 3600.0, noise_mix=_REALISTIC_MIX,
            overlap=0.2, campaign_members=(8, 15), warmup_seconds=3600.0,
            plants={
                "multi_sensor": 10, "horizontal_scan": 5, "vertical_scan": 5, "campaign_credentials": 6,
                "campaign_commands": 6, "campaign_download_host": 6, "campaign_client_version": 6, "botnet": 4,
                "research_scanner": 3, "epidemic": 6, "near_multi_sensor": 3, "near_campaign": 6, "near_campaign_weak": 6,
                "near_epidemic": 3,
            },
        ),
        Scenario(
            name="flood",
            description="30 sensors, 45 minutes, over a million distinct background sources (mostly one probe "
            "each) around a few plants: the bounded-state workload",
            sensors=30, rate_events_per_second=520.0, duration_seconds=2700.0, return_probability=0.0,
            noise_mix={"ssh": 0.03, "telnet": 0.06, "web": 0.03, "probe": 0.88},
            plants={
                "multi_sensor": 10, "horizontal_scan": 5, "vertical_scan": 5, "campaign_credentials": 3,
                "campaign_commands": 3, "campaign_download_host": 3, "campaign_client_version": 3, "epidemic": 5,
            },
        ),
    ]
}
