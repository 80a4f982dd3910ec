// A vCenter stand-in for the vddk importer tests (test/importer/vddk.test.ts): govmomi's vCenter simulator
// (github.com/vmware/govmomi/simulator, the library behind the `vcsim` command, which is not installable from the
// module proxy on its own) with one VM whose disk has a chain of snapshots, set up from a JSON spec.
//
// STAND-IN: vcsim does not implement QueryChangedDiskAreas (changed-block tracking). This program answers that one
// SOAP method itself, in front of vcsim's handler, from the changed areas the spec lists; everything else is vcsim's
// own SOAP implementation.
//
// Usage: vcsim-standin -listen 127.0.0.1:0 -cert tls.crt -key tls.key -username u -password p -spec spec.json
// It prints one JSON line on stdout when it is serving: {"url":…,"vm":{"moref":…,"instanceUuid":…,
// "biosUuid":…},"disk":{"key":…,"files":[…]},"snapshots":[{"name":…,"moref":…,"file":…,"changeId":…}]}.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type area struct {
	Start  int64 `json:"start"`
	Length int64 `json:"length"`
}

type spec struct {
	// Capacity of the VM's disk in bytes.
	Capacity int64 `json:"capacity"`
	// Snapshot names, oldest first; each gets a change ID "52 00 … 0N/N".
	Snapshots []string `json:"snapshots"`
	// Changed areas: from a snapshot name (its change ID) to a later snapshot name.
	Changes map[string]map[string][]area `json:"changes"`
	// At most this many areas per QueryChangedDiskAreas answer (vSphere pages, about 2000 areas per call).
	PageSize int `json:"pageSize"`
}

type snapInfo struct {
	Name     string `json:"name"`
	Moref    string `json:"moref"`
	File     string `json:"file"`
	ChangeID string `json:"changeId"`
}

type inventory struct {
	URL string `json:"url"`
	VM  struct {
		Moref        string `json:"moref"`
		InstanceUUID string `json:"instanceUuid"`
		BiosUUID     string `json:"biosUuid"`
	} `json:"vm"`
	Disk struct {
		Key   int32    `json:"key"`
		Files []string `json:"files"`
	} `json:"disk"`
	Snapshots []snapInfo `json:"snapshots"`
}

// cbt answers QueryChangedDiskAreas for the VM (the method vcsim lacks).
type cbt struct {
	vm       string
	key      int32
	capacity int64
	pageSize int
	byMoref  map[string]snapInfo
	byChange map[string]string // change ID -> snapshot name
	changes  map[string]map[string][]area
}

// query is QueryChangedDiskAreas: the changed areas of the disk at `snapshot` since `changeID`, from `start`, at
// most pageSize of them; Length says how far this answer covers (vSphere pages the same way).
func (c *cbt) query(this, snapshot string, key int32, start int64, changeID string) (types.DiskChangeInfo, string, string) {
	var none types.DiskChangeInfo
	if this != c.vm {
		return none, "ManagedObjectNotFound", "no such VM " + this
	}
	if key != c.key {
		return none, "InvalidArgument", fmt.Sprintf("no disk with key %d", key)
	}
	cur, ok := c.byMoref[snapshot]
	if !ok {
		return none, "ManagedObjectNotFound", "no snapshot " + snapshot
	}
	from, ok := c.byChange[changeID]
	if !ok {
		return none, "InvalidArgument", fmt.Sprintf("unknown change ID %q", changeID)
	}
	var out []types.DiskChangeExtent
	end := c.capacity
	for _, a := range c.changes[from][cur.Name] {
		if a.Start+a.Length <= start {
			continue
		}
		if len(out) == c.pageSize {
			end = a.Start
			break
		}
		out = append(out, types.DiskChangeExtent{Start: a.Start, Length: a.Length})
	}
	return types.DiskChangeInfo{StartOffset: start, Length: end - start, ChangedArea: out}, "", ""
}

var field = func(name string) *regexp.Regexp {
	return regexp.MustCompile(`<` + name + `(?:\s[^>]*)?>([^<]*)</` + name + `>`)
}

var (
	fThis, fSnapshot, fKey = field("_this"), field("snapshot"), field("deviceKey")
	fStart, fChange        = field("startOffset"), field("changeId")
)

// serve answers one QueryChangedDiskAreas SOAP request (urn:vim25) with a DiskChangeInfo or a fault.
func (c *cbt) serve(w http.ResponseWriter, r *http.Request, body []byte) {
	get := func(re *regexp.Regexp) string {
		if m := re.FindSubmatch(body); m != nil {
			return html.UnescapeString(string(m[1]))
		}
		return ""
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	envelope := func(inner string) string {
		return `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ` +
			`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>` + inner + `</soapenv:Body></soapenv:Envelope>`
	}
	if !strings.Contains(r.Header.Get("Cookie"), "vmware_soap_session") {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, envelope(`<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>not logged in</faultstring>`+
			`<detail><NotAuthenticatedFault xmlns="urn:vim25" xsi:type="NotAuthenticated"/></detail></soapenv:Fault>`))
		return
	}
	key, _ := strconv.Atoi(get(fKey))
	start, _ := strconv.ParseInt(get(fStart), 10, 64)
	info, kind, msg := c.query(get(fThis), get(fSnapshot), int32(key), start, get(fChange))
	if kind != "" {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, envelope(`<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>`+html.EscapeString(msg)+
			`</faultstring><detail><`+kind+`Fault xmlns="urn:vim25" xsi:type="`+kind+`"/></detail></soapenv:Fault>`))
		return
	}
	var areas strings.Builder
	for _, a := range info.ChangedArea {
		fmt.Fprintf(&areas, `<changedArea><start>%d</start><length>%d</length></changedArea>`, a.Start, a.Length)
	}
	fmt.Fprint(w, envelope(fmt.Sprintf(`<QueryChangedDiskAreasResponse xmlns="urn:vim25"><returnval><startOffset>%d</startOffset>`+
		`<length>%d</length>%s</returnval></QueryChangedDiskAreasResponse>`, info.StartOffset, info.Length, areas.String())))
}

func changeID(n int) string {
	return fmt.Sprintf("52 00 00 00 00 00 00 %02x-00 00 00 00 00 00 00 %02x/%d", n, n, n)
}

func diskOf(devices object) *types.VirtualDisk {
	for _, d := range devices {
		if disk, ok := d.(*types.VirtualDisk); ok {
			return disk
		}
	}
	return nil
}

type object = []types.BaseVirtualDevice

// withDisk returns a copy of the device list whose disk has its own backing with this file name and change ID.
func withDisk(devices object, file, change string, capacity int64) object {
	out := make(object, 0, len(devices))
	for _, d := range devices {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			out = append(out, d)
			continue
		}
		copied := *disk
		backing := *disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		backing.FileName = file
		backing.ChangeId = change
		copied.Backing = &backing
		copied.CapacityInBytes = capacity
		copied.CapacityInKB = capacity / 1024
		out = append(out, &copied)
	}
	return out
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	cert := flag.String("cert", "", "TLS certificate (PEM)")
	key := flag.String("key", "", "TLS key (PEM)")
	username := flag.String("username", "user", "the one valid user name")
	password := flag.String("password", "pass", "its password")
	specPath := flag.String("spec", "", "inventory spec (JSON)")
	flag.Parse()

	var sp spec
	raw, err := os.ReadFile(*specPath)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(raw, &sp); err != nil {
		log.Fatalf("spec: %v", err)
	}
	if sp.PageSize <= 0 {
		sp.PageSize = 2000
	}

	model := simulator.VPX()
	model.Machine = 1
	model.ClusterHost = 1
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	server := model.Service.NewServer()
	defer model.Remove()
	defer server.Close()

	ctx := context.Background()
	login := *server.URL
	login.User = url.UserPassword(*username, *password)
	client, err := govmomi.NewClient(ctx, &login, true)
	if err != nil {
		log.Fatal(err)
	}
	finder := find.NewFinder(client.Client, true)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		log.Fatal(err)
	}
	finder.SetDatacenter(dc)
	vms, err := finder.VirtualMachineList(ctx, "*")
	if err != nil || len(vms) == 0 {
		log.Fatalf("no VM in the simulator: %v", err)
	}
	vmObj := vms[0]
	simVM := model.Map().Get(vmObj.Reference()).(*simulator.VirtualMachine)

	var inv inventory
	public := *server.URL
	public.User = nil
	inv.URL = public.String()
	inv.VM.Moref = vmObj.Reference().Value
	inv.VM.InstanceUUID = simVM.Config.InstanceUuid
	inv.VM.BiosUUID = simVM.Config.Uuid

	disk := diskOf(simVM.Config.Hardware.Device)
	if disk == nil {
		log.Fatal("the simulator's VM has no disk")
	}
	base := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo).FileName // "[LocalDS_0] DC0_C0_RP0_VM0/disk1.vmdk"
	stem := base[:len(base)-len(".vmdk")]
	inv.Disk.Key = disk.Key
	simVM.Config.ChangeTrackingEnabled = types.NewBool(true)
	simVM.Config.Hardware.Device = withDisk(simVM.Config.Hardware.Device, base, changeID(0), sp.Capacity)
	inv.Disk.Files = append(inv.Disk.Files, base)

	c := &cbt{vm: vmObj.Reference().Value, key: disk.Key, capacity: sp.Capacity, pageSize: sp.PageSize,
		byMoref: map[string]snapInfo{}, byChange: map[string]string{}, changes: sp.Changes}
	file := base
	for i, name := range sp.Snapshots {
		task, err := vmObj.CreateSnapshot(ctx, name, "", false, false)
		if err != nil {
			log.Fatal(err)
		}
		res, err := task.WaitForResult(ctx)
		if err != nil {
			log.Fatal(err)
		}
		ref := res.Result.(types.ManagedObjectReference)
		// VMware freezes the current file in the snapshot and continues in a new delta disk.
		snap := model.Map().Get(ref).(*simulator.VirtualMachineSnapshot)
		snap.Config.Hardware.Device = withDisk(simVM.Config.Hardware.Device, file, changeID(i+1), sp.Capacity)
		info := snapInfo{Name: name, Moref: ref.Value, File: file, ChangeID: changeID(i + 1)}
		inv.Snapshots = append(inv.Snapshots, info)
		c.byMoref[ref.Value] = info
		c.byChange[info.ChangeID] = name
		file = fmt.Sprintf("%s-%06d.vmdk", stem, i+1)
		simVM.Config.Hardware.Device = withDisk(simVM.Config.Hardware.Device, file, changeID(100+i), sp.Capacity)
		inv.Disk.Files = append(inv.Disk.Files, file)
	}
	var check mo.VirtualMachine
	if err := vmObj.Properties(ctx, vmObj.Reference(), []string{"snapshot"}, &check); err != nil || check.Snapshot == nil && len(sp.Snapshots) > 0 {
		log.Fatalf("snapshot tree missing: %v", err)
	}
	_ = client.Logout(ctx)

	// vcsim's SOAP handler, with QueryChangedDiskAreas answered here first
	inner := server.Config.Handler
	server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/sdk") {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if bytes.Contains(body, []byte("<QueryChangedDiskAreas")) {
				c.serve(w, r, body)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		inner.ServeHTTP(w, r)
	})

	out, _ := json.Marshal(inv)
	fmt.Println(string(out))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
