"""What the campaign detector knows about the background before it has seen any traffic.

Rule 1 of docs/correlation.md: some values are shared by so many unrelated bots that no
amount of local learning is needed to call them background, and an instance that waits to
learn them (its first hour) opens false campaigns on them meanwhile. Measured on the
`realistic` trace (docs/correlation.md): without these lists, the three Mirai-family lists
open false campaigns 2-5 minutes after a fresh start and four public file hosts 12-29
minutes after it; with them, none does.

- `COMMON_CREDENTIALS`: username/password pairs ("user/password", as the detector writes a
  credential part) that IoT and SSH bots try everywhere: the factory defaults of cameras,
  DVRs and routers that the Mirai family's published source carries in its scanner table
  (2016) and its descendants kept, and the pairs that public honeypot reports rank highest
  year after year. A credential list made only of these is common from the first minute
  (`correlation.campaign_builtin_credentials`; operators add their own with
  `correlation.campaign_common_credentials`). A list with one pair not here is still
  judged by what the detector learns.
- Shared hosts are in the config (`correlation.campaign_shared_hosts`), short enough to read
  there: a download from one is keyed by its owner's part of the path (`download_key`).

This is a list of facts (which defaults devices ship, which passwords bots try), compiled
for honeyatlas; it is deliberately short: a pair wrongly listed here can only make a
campaign that uses nothing but listed pairs need a second key.
"""

from __future__ import annotations

COMMON_CREDENTIALS: tuple[str, ...] = (
    # Factory defaults of embedded devices (Mirai-family scanner tables and their descendants)
    "root/xc3511", "root/vizxv", "root/admin", "admin/admin", "root/888888", "root/xmhdipc",
    "root/default", "root/juantech", "root/123456", "root/54321", "support/support", "root/",
    "admin/password", "root/root", "root/12345", "user/user", "admin/", "root/pass",
    "admin/admin1234", "root/1111", "admin/smcadmin", "admin/1111", "root/666666",
    "root/password", "root/1234", "root/klv123", "Administrator/admin", "service/service",
    "supervisor/supervisor", "guest/guest", "guest/12345", "admin1/password",
    "administrator/1234", "666666/666666", "888888/888888", "ubnt/ubnt", "root/klv1234",
    "root/Zte521", "root/hi3518", "root/jvbzd", "root/anko", "root/zlxx.", "root/7ujMko0vizxv",
    "root/7ujMko0admin", "root/system", "root/ikwb", "root/dreambox", "root/user",
    "root/realtek", "root/00000000", "admin/1111111", "admin/1234", "admin/12345",
    "admin/54321", "admin/123456", "admin/7ujMko0admin", "admin/pass", "admin/meinsm",
    "tech/tech", "root/ubnt", "root/vertex25", "root/GM8182", "root/hslwificam",
    "root/ivdev", "root/tsgoingon", "root/Serv4EMC", "root/zsun1188", "default/default",
    "default/", "telnetadmin/telnetadmin", "e8ehome/e8ehome", "e8telnet/e8telnet",
    # The pairs SSH honeypots see most, year after year
    "root/toor", "root/123", "root/12345678", "root/123456789", "root/1234567890",
    "root/qwerty", "root/111111", "root/abc123", "root/P@ssw0rd", "root/Passw0rd",
    "root/changeme", "root/raspberry", "root/qwe123", "root/1qaz2wsx", "root/test",
    "root/test123", "root/admin123", "root/passw0rd", "root/rootroot", "root/alpine",
    "root/calvin", "root/centos", "root/ubuntu", "root/linux", "root/server", "root/welcome",
    "admin/admin123", "admin/1234567", "admin/12345678", "admin/qwerty", "admin/changeme",
    "user/123456", "user/password", "user/1234", "test/test", "test/123456", "guest/guest123",
    "pi/raspberry", "ubuntu/ubuntu", "oracle/oracle", "postgres/postgres", "mysql/mysql",
    "git/git", "ftpuser/ftpuser", "ftp/ftp", "deploy/deploy", "hadoop/hadoop", "nagios/nagios",
    "tomcat/tomcat", "jenkins/jenkins", "minecraft/minecraft", "steam/steam", "vagrant/vagrant",
    "docker/docker", "debian/debian", "centos/centos", "www/www", "web/web", "dev/dev",
    "es/es", "elastic/elastic", "user1/user1", "sa/sa", "operator/operator",
)
