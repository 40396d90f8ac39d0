# Vivado stand-in, part 5: validate_bd_design, make_wrapper, runs (vendor-only: recorded, not
# faked), file copies of vendor outputs, and the JSON description of the built design.
proc ::tc::required_intf {c n i} {
    set cc $::tc::cell($c)
    if {[dict get $cc kind] eq "module"} { return 1 }
    if {[dict get $i kind] ni {aximm axis}} { return 0 }
    return [expr {[dict get $cc ip] in {axi_dma axi_interconnect smartconnect}}]
}

proc validate_bd_design {args} {
    lassign [::tc::opts validate_bd_design {-force 0 -design 1} $args] o pos
    ::tc::need_bd validate_bd_design
    set errors {}
    foreach c [lsort [array names ::tc::cell]] {
        set ifs [::tc::interfaces $c]
        dict for {n i} $ifs {
            set connected [info exists ::tc::inet(/$c/$n)]
            if {!$connected && [::tc::required_intf $c $n $i]} { lappend errors "interface /$c/$n is not connected" }
            if {$connected && [dict get $i kind] in {aximm axis}} {
                set clk [dict get $i clock]
                if {$clk eq ""} {
                    lappend errors "interface /$c/$n has no associated clock (a module reference declares it with X_INTERFACE_PARAMETER ASSOCIATED_BUSIF on its clock port)"
                } else {
                    set peer $::tc::inet(/$c/$n)
                    set pclk [expr {[info exists ::tc::ext([string trimleft $peer /])] ? "" : [::tc::clock_pin $peer]}]
                    if {$pclk ne "" && [::tc::driver_of /$c/$clk] ne [::tc::driver_of $pclk]} {
                        lappend errors "/$c/$n and $peer are clocked by different sources ([::tc::driver_of /$c/$clk] vs [::tc::driver_of $pclk])"
                    }
                }
            }
        }
        dict for {p i} [::tc::pins $c] {
            if {[dict get $i dir] ne "input" || ![info exists ::tc::net(/$c/$p)] && [dict get $i type] ni {clk rst}} continue
            set optional [expr {[dict get $::tc::cell($c) kind] eq "ip" && [dict get $::tc::cell($c) ip] eq "proc_sys_reset" && $p ni {slowest_sync_clk ext_reset_in}}]
            if {[::tc::driver_of /$c/$p] eq "" && !$optional} {
                lappend errors "[expr {[dict get $i type] eq {clk} ? {clock} : ([dict get $i type] eq {rst} ? {reset} : {input})}] pin /$c/$p is not driven"
            }
        }
    }
    set mm 0
    foreach c [array names ::tc::cell] { dict for {n i} [::tc::interfaces $c] { if {[dict get $i kind] eq "aximm" && [info exists ::tc::inet(/$c/$n)]} { set mm 1 } } }
    if {$mm && ![dict exists $::tc::bd assigned]} {
        lappend errors "no address assigned (assign_bd_address)"
    } else {
        foreach c [array names ::tc::cell] {
            dict for {n i} [::tc::interfaces $c] {
                if {[dict get $i kind] eq "aximm" && [dict get $i mode] eq "slave" && [info exists ::tc::inet(/$c/$n)] &&
                    [dict get $::tc::cell($c) kind] ne "ip" || ([dict get $i kind] eq "aximm" && [dict get $i mode] eq "slave" && [dict get $::tc::cell($c) ip] eq "axi_dma")} {
                    if {[lsearch -exact [lmap s $::tc::segments {dict get $s slave}] /$c/$n] < 0} {
                        lappend errors "slave /$c/$n has no address segment (not reachable from a master)"
                    }
                }
            }
        }
    }
    if {$errors ne {}} { ::tc::fail "validate_bd_design: [join $errors {; }]" }
    dict set ::tc::bd validated 1
    ::tc::record validate_bd_design
    return ""
}

proc make_wrapper {args} {
    lassign [::tc::opts make_wrapper {-files 1 -top 0 -fileset 1 -import 0 -inst_template 0} $args] o pos
    set f [file normalize [dict get $o -files]]
    if {![dict exists $::tc::virtual $f] || [lindex [dict get $::tc::virtual $f] 0] ne "bd"} {
        ::tc::fail "make_wrapper -files $f: not the block design file ([dict get $::tc::bd file])"
    }
    if {![dict get $::tc::bd validated]} { ::tc::fail "make_wrapper before validate_bd_design" }
    set name [lindex [dict get $::tc::virtual $f] 1]
    set w [dict get $::tc::project dir]/[dict get $::tc::project name].gen/sources_1/bd/$name/hdl/${name}_wrapper.v
    dict set ::tc::virtual $w [list wrapper ${name}_wrapper]
    return $w
}

proc generate_target {args} { ::tc::record generate_target args $args vendor_only 1; return "" }

proc launch_runs {args} {
    lassign [::tc::opts launch_runs {-to_step 1 -jobs 1 -next_step 0 -scripts_only 0} $args] o pos
    set run [lindex $pos 0]
    if {$run ni {synth_1 impl_1}} { ::tc::fail "launch_runs $run: the project has synth_1 and impl_1" }
    if {$::tc::bd ne {} && ![dict get $::tc::bd validated]} { ::tc::fail "launch_runs: the block design changed since validate_bd_design" }
    if {$::tc::bd ne {} && ![dict get $::tc::bd saved]} { ::tc::fail "launch_runs: the block design is not saved (save_bd_design)" }
    if {![dict exists $::tc::tops sources_1]} { ::tc::fail "launch_runs: no top module set" }
    set top [dict get $::tc::tops sources_1]
    set step [expr {[dict exists $o -to_step] ? [dict get $o -to_step] : ""}]
    set dir [dict get $::tc::project dir]
    set pname [dict get $::tc::project name]
    if {$run eq "impl_1" && $step eq "write_bitstream"} {
        dict set ::tc::virtual $dir/$pname.runs/impl_1/$top.bit [list bit $top]
        if {$::tc::bd ne {}} {
            set b [dict get $::tc::bd name]
            dict set ::tc::virtual $dir/$pname.gen/sources_1/bd/$b/hw_handoff/$b.hwh [list hwh $b]
        }
    }
    ::tc::record launch_runs run $run to_step $step top $top vendor_only 1
    dict set ::tc::bd launched_$run 1
    return $run
}

proc wait_on_run {args} {
    lassign [::tc::opts wait_on_run {-timeout 1} $args] o pos
    set run [lindex $pos 0]
    if {$::tc::bd eq {} || ![dict exists $::tc::bd launched_$run]} { ::tc::fail "wait_on_run $run: not launched" }
    ::tc::record wait_on_run run $run vendor_only 1
    return $run
}

# `file copy` of something only Vivado produces is recorded; every other file command is Tcl's.
rename file ::tc::tcl_file
proc file {sub args} {
    if {$sub eq "copy"} {
        set words [lsearch -all -inline -not -glob $args -*]
        set src [::tc::tcl_file normalize [lindex $words 0]]
        set dst [::tc::tcl_file normalize [lindex $words 1]]
        if {[string index [lindex $words 1] end] eq "/" || [dict exists $::tc::virtual $dst/component.xml]} { set dst $dst/[::tc::tcl_file tail $src] }
        if {[::tc::tcl_file isdirectory $src]} {
            foreach f [glob -nocomplain -directory $src -types f *] { dict set ::tc::virtual $dst/[::tc::tcl_file tail $f] [list copy $f] }
        }
        if {[dict exists $::tc::virtual $src]} {
            ::tc::record copy from $src to [::tc::tcl_file normalize [lindex $words 1]] \
                produced_by [lindex [dict get $::tc::virtual $src] 0] vendor_only 1
            return ""
        }
        if {![::tc::tcl_file exists $src]} {
            ::tc::fail "file copy: $src does not exist and no earlier command produces it\
 (Vivado ≥ 2020.2 writes <proj>.runs/impl_1/<top>.bit and <proj>.gen/sources_1/bd/<bd>/hw_handoff/<bd>.hwh)"
        }
        ::tc::record copy from $src to [lindex $words 1]
        return ""
    }
    if {$sub eq "rename"} {
        set words [lsearch -all -inline -not -glob $args -*]
        set src [::tc::tcl_file normalize [lindex $words 0]]
        if {![dict exists $::tc::virtual $src] && ![::tc::tcl_file exists $src]} { ::tc::fail "file rename: $src does not exist and no earlier command produces it" }
        if {[dict exists $::tc::virtual $src]} { dict set ::tc::virtual [::tc::tcl_file normalize [lindex $words 1]] [dict get $::tc::virtual $src] }
        ::tc::record file_rename args $args
        return ""
    }
    if {$sub in {mkdir delete link}} { ::tc::record file_$sub args $args; return "" }
    return [::tc::tcl_file $sub {*}$args]
}

# --- JSON -------------------------------------------------------------------------------
proc ::tc::js {s} {
    if {[string is wideinteger -strict $s]} { return $s }
    return "\"[string map {\\ \\\\ \" \\\" \n \\n \t \\t} $s]\""
}
proc ::tc::jobj {d} {
    set parts {}
    dict for {k v} $d { lappend parts "[::tc::js $k]: [::tc::js $v]" }
    return "{[join $parts {, }]}"
}
proc ::tc::jlist {items} { return "\[[join $items {, }]\]" }

proc ::tc::result_json {ok error} {
    set cells {}
    foreach c [lsort [array names ::tc::cell]] {
        set cc $::tc::cell($c)
        set kind [dict get $cc kind]
        set what [expr {$kind eq "ip" ? [dict get $cc vlnv] : [dict get $cc ref]}]
        set ifs {}
        catch { set ifs [::tc::interfaces $c] }
        set ifj [lmap {n i} $ifs {string cat [::tc::js $n] ": " [::tc::jobj [dict filter $i key kind mode width clock]]}]
        lappend cells "[::tc::js $c]: {\"kind\": [::tc::js $kind], \"type\": [::tc::js $what], \"automation\": [expr {[dict exists $cc automation] ? "true" : "false"}],\
 \"config\": [::tc::jobj [dict get $cc config]], \"set\": [::tc::jobj [dict get $cc user]], \"interfaces\": {[join $ifj {, }]}}"
    }
    set inets {}
    foreach a [lsort [array names ::tc::inet]] { if {$a < $::tc::inet($a)} { lappend inets [::tc::jlist [list [::tc::js $a] [::tc::js $::tc::inet($a)]]] } }
    set nets {}
    foreach n [lsort [array names ::tc::members]] { lappend nets "[::tc::js $n]: [::tc::jlist [lmap p [lsort $::tc::members($n)] {::tc::js $p}]]" }
    set files [lmap f $::tc::files {::tc::jobj [dict create path [lindex $f 0] fileset [lindex $f 1] type [lindex $f 2] global_include [lindex $f 3]]}]
    set engine {}
    foreach c [lsort [array names ::tc::cell]] {
        if {[dict get $::tc::cell($c) kind] eq "module"} { lappend engine "[::tc::js $c]: [::tc::jobj [dict get $::tc::cell($c) config]]" }
    }
    set proj [expr {$::tc::project eq {} ? "null" : [::tc::jobj $::tc::project]}]
    return "{\"ok\": [expr {$ok ? "true" : "false"}], \"error\": [::tc::js $error], \"script\": [::tc::js $::tc::script],\
 \"project\": $proj, \"files\": [::tc::jlist $files], \"tops\": [::tc::jobj $::tc::tops],\
 \"block_design\": [expr {$::tc::bd eq {} ? "null" : [::tc::jobj [dict remove $::tc::bd file]]}],\
 \"cells\": {[join $cells {, }]}, \"interface_nets\": [::tc::jlist $inets], \"nets\": {[join $nets {, }]},\
 \"ports\": {[join [lmap n [lsort [array names ::tc::ext]] {string cat [::tc::js $n] ": " [::tc::jobj [dict remove $::tc::ext($n) config]]}] {, }]},\
 \"address_map\": [::tc::jlist [lmap s $::tc::segments {::tc::jobj $s}]], \"module_parameters\": {[join $engine {, }]},\
 \"log\": [::tc::jlist [lmap r $::tc::log {::tc::jobj $r}]], \"warnings\": [::tc::jlist [lmap w $::tc::warnings {::tc::js $w}]]}"
}
