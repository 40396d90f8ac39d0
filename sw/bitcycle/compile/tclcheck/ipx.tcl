# Vivado stand-in, part 6: what FINN's stitched-IP script (CreateStitchedIP's make_project.tcl)
# uses beyond the block design: IP repositories, external ports, ipx:: packaging. Packaging writes
# component.xml and the IP's files: vendor-only, recorded; FINN's post-processing of component.xml
# then reads an empty stand-in (its content only Vivado can produce).
proc set_msg_config {args} { ::tc::record set_msg_config args $args; return "" }
proc update_ip_catalog {args} {
    if {[dict exists $::tc::project ip_repo_paths]} {
        foreach p [dict get $::tc::project ip_repo_paths] {
            if {![file isdirectory $p]} { ::tc::fail "update_ip_catalog: IP repository $p does not exist" }
        }
    }
    return ""
}

proc make_bd_pins_external {args} { ::tc::make_external make_bd_pins_external pin $args }

proc ::tc::ports {what kind pats} {
    set names [lsort [lmap n [array names ::tc::ext] {
        if {([dict exists $::tc::ext($n) kind] ? "intf" : "pin") eq $kind} { set n } else continue
    }]]
    if {$pats eq {}} { return [lmap n $names {string cat / $n}] }
    set out {}
    foreach pat [concat {*}$pats] {
        set hits [lsearch -all -inline -glob $names [string trimleft $pat /]]
        if {$hits eq {}} { ::tc::fail "$what: no port $pat (ports: [join $names {, }])" }
        lappend out {*}[lmap n $hits {string cat / $n}]
    }
    return $out
}
proc get_bd_ports {args} {
    lassign [::tc::opts get_bd_ports {-filter 1 -of_objects 1} $args] o pos
    return [::tc::ports get_bd_ports pin $pos]
}
proc get_bd_intf_ports {args} {
    lassign [::tc::opts get_bd_intf_ports {-filter 1 -of_objects 1} $args] o pos
    set ports [::tc::ports get_bd_intf_ports intf $pos]
    if {[dict exists $o -filter]} {
        set f [dict get $o -filter]
        if {![regexp {^CONFIG\.PROTOCOL\s*==\s*(\w+)$} $f - proto]} { ::tc::fail "get_bd_intf_ports -filter {$f}: not modelled" }
        # AXI4-Lite ports are the memory-mapped ones (module references here have no bursts)
        set ports [lmap p $ports { if {$proto eq "AXI4LITE" && [dict get $::tc::ext([string trimleft $p /]) kind] eq "aximm"} { set p } else continue }]
    }
    return $ports
}

proc ::tc::rename_port {old new} {
    set old [string trimleft $old /]
    if {[info exists ::tc::ext($new)]} { ::tc::fail "set_property name $new: a port named $new exists" }
    set ::tc::ext($new) $::tc::ext($old)
    unset ::tc::ext($old)
    foreach arr {net inet} {
        if {[info exists ::tc::${arr}(/$old)]} {
            set ::tc::${arr}(/$new) [set ::tc::${arr}(/$old)]
            unset ::tc::${arr}(/$old)
        }
    }
    foreach n [array names ::tc::members] { set ::tc::members($n) [lmap p $::tc::members($n) {expr {$p eq "/$old" ? "/$new" : $p}}] }
    foreach p [array names ::tc::inet] { if {$::tc::inet($p) eq "/$old"} { set ::tc::inet($p) /$new } }
}

# --- ipx:: packaging ------------------------------------------------------------------
namespace eval ::ipx {}
proc ::ipx::package_project {args} {
    lassign [::tc::opts ipx::package_project {-root_dir 1 -vendor 1 -library 1 -taxonomy 1 -module 1 -import_files 0 -generated_files 0 -force 0} $args] o pos
    if {$::tc::bd eq {} || [dict get $o -module] ne [dict get $::tc::bd name]} {
        ::tc::fail "ipx::package_project -module [dict get $o -module]: no block design of that name"
    }
    if {![dict get $::tc::bd validated]} { ::tc::fail "ipx::package_project: the block design is not validated" }
    set vlnv [dict get $o -vendor]:[dict get $o -library]:[dict get $o -module]:1.0
    set root [file normalize [dict get $o -root_dir]]
    set busifs [lmap p [::tc::ports ipx intf {}] {string trimleft $p /}]
    set ::tc::core [dict create vlnv $vlnv root $root busifs $busifs groups {xilinx_anylanguagesynthesis xilinx_anylanguagebehavioralsimulation xilinx_implementation} files {}]
    dict set ::tc::virtual $root/component.xml [list component $vlnv]
    ::tc::record ipx_package_project vlnv $vlnv root $root bus_interfaces $busifs vendor_only 1
    return core:$vlnv
}
proc ::tc::need_core {what} { if {![info exists ::tc::core]} { ::tc::fail "$what before ipx::package_project" } }
proc ::ipx::current_core {args} { ::tc::need_core ipx::current_core; return core:[dict get $::tc::core vlnv] }
proc ::ipx::find_open_core {vlnv} {
    ::tc::need_core ipx::find_open_core
    if {$vlnv ne [dict get $::tc::core vlnv]} { ::tc::fail "ipx::find_open_core $vlnv: the open core is [dict get $::tc::core vlnv]" }
    return core:$vlnv
}
proc ::tc::core_arg {what obj} {
    if {$obj ne "core:[dict get $::tc::core vlnv]"} { ::tc::fail "$what: '$obj' is not the open core" }
}
proc ::ipx::create_xgui_files {core} { ::tc::core_arg ipx::create_xgui_files $core; return "" }
proc ::ipx::update_checksums {core} { ::tc::core_arg ipx::update_checksums $core; return "" }
proc ::ipx::save_core {core} { ::tc::core_arg ipx::save_core $core; ::tc::record ipx_save_core vendor_only 1; return "" }
proc ::ipx::get_bus_interfaces {args} {
    lassign [::tc::opts ipx::get_bus_interfaces {-of_objects 1 -of 1} $args] o pos
    ::tc::need_core ipx::get_bus_interfaces
    set names [dict get $::tc::core busifs]
    if {$pos ne {}} {
        foreach n $pos { if {$n ni $names} { ::tc::fail "ipx::get_bus_interfaces $n: the core has [join $names {, }]" } }
        set names $pos
    }
    return [lmap n $names {string cat busif: $n}]
}
proc ::ipx::get_bus_parameters {args} {
    lassign [::tc::opts ipx::get_bus_parameters {-of_objects 1 -of 1} $args] o pos
    return [lmap b [concat {*}[dict get $o [expr {[dict exists $o -of] ? "-of" : "-of_objects"}]]] {string cat busparam: $b}]
}
proc ::ipx::add_file_group {args} {
    lassign [::tc::opts ipx::add_file_group {-type 1} $args] o pos
    lassign $pos name core
    ::tc::core_arg ipx::add_file_group $core
    set g [expr {$name eq "" ? [dict get $o -type] : $name}]
    dict lappend ::tc::core groups $g
    return group:$g
}
proc ::ipx::get_file_groups {args} {
    lassign [::tc::opts ipx::get_file_groups {-of_objects 1 -of 1} $args] o pos
    set g [lindex $pos 0]
    if {$g ni [dict get $::tc::core groups]} { ::tc::fail "ipx::get_file_groups $g: the core has [join [dict get $::tc::core groups] {, }]" }
    return group:$g
}
proc ::ipx::add_file {path group} {
    set root [dict get $::tc::core root]
    set full [file normalize [file join $root $path]]
    if {![dict exists $::tc::virtual $full] && ![file exists $full]} {
        ::tc::fail "ipx::add_file $path: $full does not exist (packaged files are relative to the core's root $root)"
    }
    dict lappend ::tc::core files [list $path $group]
    return file:$path
}
proc ::ipx::get_files {args} {
    lassign [::tc::opts ipx::get_files {-of_objects 1 -of 1} $args] o pos
    return {}
}
proc ::ipx::remove_file {args} { return "" }
proc ::ipx::remove_all_file {args} { return "" }
proc ::ipx::remove_file_group {args} { return "" }
proc ::ipx::remove_segment {args} { return "" }
proc ::ipx::get_address_spaces {args} { return {} }

# `open`: files only Vivado writes read as empty; writes go to a scratch copy (recorded)
rename open ::tc::tcl_open
proc open {path {mode r} args} {
    set full [file normalize $path]
    if {[string index $mode 0] in {w a}} {
        set scratch [file join $::tc::scratch [llength $::tc::log]-[file tail $full]]
        ::tc::record write path $full scratch $scratch
        return [::tc::tcl_open $scratch $mode {*}$args]
    }
    if {[dict exists $::tc::virtual $full]} {
        ::tc::record read path $full produced_by [lindex [dict get $::tc::virtual $full] 0] vendor_only 1
        return [::tc::tcl_open /dev/null r]
    }
    return [::tc::tcl_open $path $mode {*}$args]
}
