// Domain XML for the e2e tests: a diskless QEMU guest cheap enough to boot under TCG on a two-core
// machine, and a domain for libvirt's in-memory test driver. Test support only.

/** Prefix of every guest the tests create; `scripts/backend.sh stop` destroys leftovers by it. */
export const GUEST_PREFIX = 'vpe2e-';

/** A guest name unique to this test process, carrying the prefix backend.sh cleans up by. */
export function guestName(tag: string): string {
  return `${GUEST_PREFIX}${tag}-${process.pid}`;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A 64 MiB x86_64 guest under TCG (type 'qemu', so no KVM is needed) with no disk and no NIC: the
 * BIOS finds nothing to boot and waits at "No bootable device", which is all a test needs for
 * screenshots, consoles, lifecycle calls and events. VNC listens on 127.0.0.1 only.
 */
export function tinyGuestXml(name: string): string {
  return `<domain type='qemu'>
  <name>${escapeXml(name)}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='network'/>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
    <video><model type='vga'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** A minimal domain for the `test:///default` driver, which keeps everything in memory. */
export function testDomainXml(name: string): string {
  return `<domain type='test'>
  <name>${escapeXml(name)}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='i686'>hvm</type>
  </os>
</domain>
`;
}
