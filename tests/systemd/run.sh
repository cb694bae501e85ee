#!/bin/sh
# The systemd test, inside the Debian 12 arm64 VM (tests/systemd/README.md).
# Run as root by the image's vm-run.service once the system is up, with the
# per-run disk mounted at $1 (bedside.deb, this script). Every check prints
# "BEDSIDE-SYSTEMD: PASS name" or "BEDSIDE-SYSTEMD: FAIL name: why" on the
# serial console; the last line is "BEDSIDE-SYSTEMD: RESULT PASS|FAIL".
d=$1
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C SYSTEMD_PAGER= SYSTEMD_COLORS=0
fails=0
pass() { echo "BEDSIDE-SYSTEMD: PASS $*"; }
fail() { echo "BEDSIDE-SYSTEMD: FAIL $*"; fails=$((fails + 1)); }
mark() { echo "BEDSIDE-SYSTEMD: $*"; }
# check NAME COMMAND...: PASS when COMMAND succeeds.
check() { n=$1; shift; if "$@"; then pass "$n"; else fail "$n ($*)"; fi; }
prop() { systemctl show -p "$1" --value bedside; }
journal() { journalctl -u bedside -o cat --no-pager "$@"; }
# waitfor SECS COMMAND...: until COMMAND succeeds, at most SECS seconds.
now() { cut -d' ' -f1 /proc/uptime; }
waitfor() { end=$(echo "$(now) $1" | awk '{print $1 + $2}'); shift
  until "$@"; do awk -v e="$end" -v n="$(now)" 'BEGIN {exit !(n > e)}' && return 1; sleep 0.5; done; }
elapsed() { echo "$1 $(now)" | awk '{printf "%.1f", $2 - $1}'; }

mark "systemd $(systemctl --version | head -n1 | cut -d' ' -f2), PID 1 is $(cat /proc/1/comm), kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME"), $(dpkg --print-architecture)"
mark "up $(now) s after the kernel started"
# (is-system-running says "starting" while this very job runs.)
mark "system state: $(systemctl is-system-running)"
check "systemd is PID 1, multi-user.target reached" sh -c '[ "$(cat /proc/1/comm)" = systemd ] && systemctl is-active --quiet multi-user.target'
systemctl --failed --no-legend --plain | sed 's/^/  failed unit: /'

# 1. dpkg -i
t=$(now)
dpkg -i "$d/bedside.deb" > /tmp/dpkg-i.log 2>&1; rc=$?
sed 's/^/  dpkg: /' /tmp/dpkg-i.log
mark "dpkg -i took $(elapsed "$t") s"
check "dpkg -i exits 0" [ "$rc" = 0 ]
check "package installed" sh -c 'dpkg-query -W -f "\${db:Status-Abbrev}" bedside | grep -q "^ii"'
groups=$(id -nG bedside 2>&1)
mark "id bedside: $(id bedside 2>&1)"
for g in video gpio spi tty; do
  check "user bedside in group $g" sh -c "echo ' $groups ' | grep -q ' $g '"
done
check "bedside is a system user with no login shell" sh -c 'u=$(getent passwd bedside); [ "$(echo "$u" | cut -d: -f3)" -lt 1000 ] && echo "$u" | grep -q ":/usr/sbin/nologin$"'
check "conffile /etc/bedside/bedside.env" sh -c '[ -f /etc/bedside/bedside.env ] && dpkg-query -W -f "\${Conffiles}" bedside | grep -q " /etc/bedside/bedside.env "'
check "unit installed (LoadState=loaded)" [ "$(prop LoadState)" = loaded ]
check "unit not enabled (package: enable=false)" [ "$(systemctl is-enabled bedside 2>&1)" = disabled ]
check "unit not started by dpkg" [ "$(prop ActiveState)" = inactive ]
systemd-analyze verify bedside.service > /tmp/verify.log 2>&1; rc=$?
sed 's/^/  verify: /' /tmp/verify.log
check "systemd-analyze verify bedside.service" [ "$rc" = 0 ]
for p in User Type WatchdogUSec Restart ProtectSystem DevicePolicy PrivateNetwork MemoryDenyWriteExecute RestrictAddressFamilies CapabilityBoundingSet AmbientCapabilities NoNewPrivileges; do
  mark "  $p=$(prop $p)"
done
check "hardening in effect" sh -c '[ "$(systemctl show -p ProtectSystem --value bedside)" = strict ] && [ "$(systemctl show -p DevicePolicy --value bedside)" = closed ] && [ "$(systemctl show -p PrivateNetwork --value bedside)" = yes ] && [ "$(systemctl show -p MemoryDenyWriteExecute --value bedside)" = yes ] && [ "$(systemctl show -p RestrictAddressFamilies --value bedside)" = AF_UNIX ]'
mark "security: $(systemd-analyze security bedside.service 2>/dev/null | tail -n1)"

# 2. The cart's grabber and the monitor. bochs is loaded by udev for the
# bochs-display PCI device; vivid has no device to be found by, so it is
# configured as a user would: modules-load.d (and default module options:
# input 0 is vivid's webcam, YUYV 640x480 among its sizes, a test pattern).
echo vivid > /etc/modules-load.d/vivid.conf
systemctl restart systemd-modules-load.service
udevadm settle
check "vivid loaded (modules-load.d)" [ -d /sys/module/vivid ]
check "bochs loaded (udev, bochs-display)" [ -d /sys/module/bochs ]
check "/dev/video0 is vivid's capture node" sh -c 'grep -q vivid /sys/class/video4linux/video0/name'
check "/dev/fb0 (bochs-drm)" sh -c 'grep -q bochs /sys/class/graphics/fb0/name'
check "/dev/gpiochip0 (PL061)" sh -c '[ -c /dev/gpiochip0 ] && grep -q pl061 /sys/bus/gpio/devices/gpiochip0/../uevent 2>/dev/null || [ -c /dev/gpiochip0 ]'
ls -l /dev/video0 /dev/fb0 /dev/gpiochip0 /dev/tty0 2>&1 | sed 's/^/  /'
mark "device tree compatible: $(tr '\0' ' ' < /proc/device-tree/compatible)"

# The unit's device allow-list, exactly as written in the installed unit,
# in a transient service (root, DevicePolicy=closed): which nodes the
# cgroup lets through. EPERM is the sandbox refusing; ENXIO on the SPI node
# (made by hand: this machine has no SPI controller, but spidev registers
# its major, 153 "spi" in /proc/devices) means the open reached the driver.
modprobe spidev
mark "/proc/devices: $(grep -E ' (spi|gpiochip|fb|video4linux|tty|drm)$' /proc/devices | tr '\n' ',')"
[ -e /dev/spidev-probe ] || mknod /dev/spidev-probe c 153 0
probe='for n in /dev/video0 /dev/fb0 /dev/gpiochip0 /dev/tty0 /dev/spidev-probe; do
  if (exec 3<>"$n") 2>/tmp/e; then echo "$n opened"; else echo "$n refused: $(sed "s/.*: //" /tmp/e)"; fi; done'
set --
while read -r a; do set -- "$@" -p "DeviceAllow=$a"; done <<EOF
$(sed -n 's/^DeviceAllow=//p' /usr/lib/systemd/system/bedside.service)
EOF
mark "probe: systemd-run -p DevicePolicy=closed $*"
systemd-run --quiet --wait --pipe -p DevicePolicy=closed "$@" sh -c "$probe" > /tmp/probe 2>&1
sed 's/^/  sandbox: /' /tmp/probe
for n in video0 fb0 gpiochip0 tty0; do
  check "the unit's device policy lets /dev/$n through" grep -q "^/dev/$n opened" /tmp/probe
done
check "the unit's device policy lets a spidev node through (SPI panels)" sh -c '! grep -q "^/dev/spidev-probe refused: Operation not permitted" /tmp/probe'

# The virt machine wires its power button to PL061 line 3 and describes it
# as gpio-keys in the device tree, so on a full Debian udev loads
# gpio_keys, which holds the line (bedside: EBUSY). The qemu-virt profile
# uses that line as FREEZE: free it as a cart's admin frees a button line,
# by keeping the driver off it.
mark "gpio_keys loaded by udev: $([ -d /sys/module/gpio_keys ] && echo yes || echo no)"
echo "blacklist gpio_keys" > /etc/modprobe.d/bedside-freeze-button.conf
rmmod gpio_keys 2>/dev/null
check "PL061 line 3 free for FREEZE (gpio_keys not loaded)" [ ! -d /sys/module/gpio_keys ]

# 3. The service, as a user starts it: BEDSIDE_BOARD=auto (the default)
# picks qemu-virt from the device tree; stats every 5 s to see them soon.
sed -i 's/^BEDSIDE_ARGS=.*/BEDSIDE_ARGS=--stats-every 5/' /etc/bedside/bedside.env
grep -v '^#' /etc/bedside/bedside.env | sed 's/^/  bedside.env: /'
# A test-only drop-in in /run (not the package's unit): after each run of
# the main process systemd hands ExecStopPost= how it ended; "+" runs it
# outside the sandbox. (Result=success alone would not tell: systemd counts
# death by SIGTERM as success too.)
mkdir -p /run/systemd/system/bedside.service.d
cat > /run/systemd/system/bedside.service.d/test-exit.conf <<'EOF'
[Service]
ExecStopPost=+/bin/sh -c 'echo "bedside-test: main process ended: result=$$SERVICE_RESULT code=$$EXIT_CODE status=$$EXIT_STATUS"'
EOF
systemctl daemon-reload
t=$(now)
systemctl start bedside; rc=$?
mark "systemctl start returned $rc after $(elapsed "$t") s"
check "systemctl start bedside exits 0 (READY=1 received)" [ "$rc" = 0 ]
check "ActiveState=active" [ "$(prop ActiveState)" = active ]
check "SubState=running" [ "$(prop SubState)" = running ]
pid=$(prop MainPID)
mark "MainPID=$pid StatusText=$(prop StatusText) WatchdogUSec=$(prop WatchdogUSec) WatchdogTimestamp=$(prop WatchdogTimestamp)"
mark "  service environment: $(tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -E '^(WATCHDOG|NOTIFY|BEDSIDE|RUST_LOG|INVOCATION)' | tr '\n' ' ')"
if [ "$(prop SubState)" != running ]; then
  # No point waiting for frames or a watchdog: show why, stop, purge.
  journal -n 40 | sed 's/^/  journal: /'
  systemctl status --no-pager bedside 2>&1 | sed 's/^/  status: /'
  fail "the service is not running: the remaining service checks are skipped"
  systemctl stop bedside
  dpkg --purge bedside > /tmp/dpkg-p.log 2>&1 && pass "dpkg --purge exits 0" || fail "dpkg --purge exits 0"
  mark "RESULT FAIL ($fails failed)"
  exit 1
fi
check "runs as user bedside" sh -c "[ \"\$(awk '/^Uid:/ {print \$2}' /proc/$pid/status)\" = \"\$(id -u bedside)\" ]"
mark "  $(grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/$pid/status | tr '\t\n' '  ')"
check "only CAP_SYS_TTY_CONFIG (bit 26) effective" [ "$(awk '/^CapEff:/ {print $2}' /proc/$pid/status)" = 0000000004000000 ]
waitfor 60 sh -c 'journalctl -u bedside -o cat | grep -q "stats:\|fps="' || true
for f in /proc/$pid/fd/*; do readlink "$f"; done | grep '^/dev/' | sort -u | sed 's/^/  open: /'
opened() { for f in /proc/$pid/fd/*; do readlink "$f"; done | grep -qx "$1"; }
check "bedside holds /dev/video0 open" opened /dev/video0
check "bedside has /dev/fb0 mapped" grep -q " /dev/fb0$" /proc/$pid/maps
check "bedside holds /dev/gpiochip0 open (FREEZE)" opened /dev/gpiochip0
check "bedside holds /dev/tty0 open (console in graphics mode)" opened /dev/tty0
journal > /tmp/j1
sed 's/^/  journal: /' /tmp/j1 | head -n 40
check "journal: --board auto picked qemu-virt" grep -q -- "--board auto: qemu-virt" /tmp/j1
check "journal: capturing 640x480 YUYV" grep -q "capturing 640x480 YUYV" /tmp/j1
check "journal: a periodic stats line" grep -q "fps=" /tmp/j1
check "journal: no error or permission denied" sh -c '! grep -Eiq "ERROR|permission denied|operation not permitted" /tmp/j1'
check "journal: no ANSI colour codes" sh -c '! grep -q "$(printf "\033")\[" /tmp/j1'
check "journal: READY (systemd logged Started)" sh -c 'journalctl -u bedside -o cat | grep -q "^Started bedside"'
journalctl -b -o cat --no-pager | grep -i "bedside.service" | grep -v "^bedside.service: Consumed" | sort -u | sed 's/^/  systemd: /'
check "systemd: no warning about the unit" sh -c '! journalctl -b -o cat | grep -i "bedside.service" | grep -Eiq "ignoring|couldn.t|failed to|invalid|not a device"'
check "/dev/gpiochip0 is group gpio (60-bedside.rules)" [ "$(stat -c %G /dev/gpiochip0)" = gpio ]
mark "SCREEN"   # the host takes a screendump now
sleep 3

# 4. Watchdog: a hung main loop (SIGSTOP) stops the pings; after WatchdogSec
# systemd aborts it and Restart=on-failure starts it again.
n0=$(prop NRestarts)
t=$(now)
kill -STOP "$pid"
mark "SIGSTOP to $pid (NRestarts=$n0)"
waitfor 90 sh -c "journalctl -u bedside -o cat | grep -q 'Watchdog timeout'"; rc=$?
mark "watchdog timeout logged after $(elapsed "$t") s"
check "systemd logs a watchdog timeout" [ "$rc" = 0 ]
waitfor 240 sh -c "[ \"\$(systemctl show -p MainPID --value bedside)\" != $pid ] && [ \"\$(systemctl show -p MainPID --value bedside)\" != 0 ] && [ \"\$(systemctl show -p SubState --value bedside)\" = running ]"; rc=$?
pid2=$(prop MainPID)
mark "restarted and running again after $(elapsed "$t") s: MainPID $pid -> $pid2, NRestarts $n0 -> $(prop NRestarts)"
check "restarted: running again" [ "$rc" = 0 ]
check "NRestarts went up" [ "$(prop NRestarts)" -gt "$n0" ]
check "a new MainPID" sh -c "[ '$pid2' != '$pid' ] && [ '$pid2' != 0 ]"
check "the old process is gone" sh -c "[ ! -d /proc/$pid ]"
check "ActiveState=active again" [ "$(prop ActiveState)" = active ]
journal | grep -E "Watchdog|Main process exited|Scheduled restart|Started|Stopped" | sed 's/^/  journal: /'

# 5. A clean stop: SIGTERM ends the run after the current frame; bedside
# logs its summary and exits 0.
t=$(now)
systemctl stop bedside; rc=$?
mark "systemctl stop returned $rc after $(elapsed "$t") s"
check "systemctl stop exits 0" [ "$rc" = 0 ]
check "ActiveState=inactive" [ "$(prop ActiveState)" = inactive ]
check "Result=success" [ "$(prop Result)" = success ]
mark "  ExecMainCode=$(prop ExecMainCode) ExecMainStatus=$(prop ExecMainStatus)"
journal > /tmp/j2
tail -n 25 /tmp/j2 | sed 's/^/  journal: /'
check "journal: stopping on the signal" grep -q "stopping: signal received" /tmp/j2
check "journal: the run's summary" grep -q "== ultrasound mode" /tmp/j2
check "journal: console back in text mode" grep -q "console back in text mode" /tmp/j2
grep "bedside-test: main process ended" /tmp/j2 | sed 's/^/  /'
check "the watchdog kill was seen as such" grep -q "result=watchdog code=killed status=ABRT" /tmp/j2
check "the stopped run exited with status 0" sh -c 'grep "bedside-test: main process ended" /tmp/j2 | tail -n1 | grep -q "result=success code=exited status=0$"'
rm -rf /run/systemd/system/bedside.service.d; systemctl daemon-reload

# 6. Purge: the package, its unit and its user go.
dpkg --purge bedside > /tmp/dpkg-p.log 2>&1; rc=$?
sed 's/^/  dpkg: /' /tmp/dpkg-p.log
check "dpkg --purge exits 0" [ "$rc" = 0 ]
check "user bedside removed (postrm)" sh -c '! getent passwd bedside'
mark "group bedside after purge: $(getent group bedside || echo none)"
check "unit gone" sh -c '[ ! -e /usr/lib/systemd/system/bedside.service ] && [ "$(systemctl show -p LoadState --value bedside)" = not-found ]'
check "/etc/bedside gone" [ ! -e /etc/bedside/bedside.env ]

if [ "$fails" = 0 ]; then mark "RESULT PASS"; else mark "RESULT FAIL ($fails failed)"; fi
